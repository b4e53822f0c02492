// The smallest C++ program linked through examples/cmake/CMakeLists.txt: a model, a density
// evaluation, a save / load round trip.
#include "lwflow.hpp"

#include <cstdio>
#include <vector>

int main() {
    std::printf("lwflow %s (header %d)\n", lwf_version_string(), LWFLOW_VERSION);
    if (lwf_version() != LWFLOW_VERSION) return 1;
    lwflow::model model(lwflow::shape(2, 16, 2).mixture(2), 42);
    const std::vector<double> theta{0.0, 0.0, 1.0, -1.0};
    std::vector<double> log_q = model.log_prob(theta);
    lwflow::model copy = lwflow::model::load(model.save());
    const bool same = copy.log_prob(theta) == log_q;
    std::printf("log q = %.6f, %.6f; reloaded: %s\n", log_q[0], log_q[1], same ? "same" : "DIFFERENT");
    return same ? 0 : 1;
}
