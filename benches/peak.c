// One core's f32 FMA peak: 12 independent chains of FMAs (AVX-512 and AVX2), and one dependent
// chain whose 4-cycle latency (Zen 5) gives the clock. gcc -O2 -march=native -o peak peak.c
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  long iters=200000000;
  __m512 a[12]; __m512 m=_mm512_set1_ps(0.999999f), c=_mm512_set1_ps(1e-7f);
  for(int k=0;k<12;k++) a[k]=_mm512_set1_ps((float)k);
  double t0=now();
  for(long i=0;i<iters;i++){
#pragma GCC unroll 12
    for(int k=0;k<12;k++) a[k]=_mm512_fmadd_ps(a[k],m,c);
  }
  double t=now()-t0; float s=0; for(int k=0;k<12;k++) s+=_mm512_reduce_add_ps(a[k]);
  printf("avx512 fma: %.1f GFLOP/s (%.3f s) [%g]\n", iters*12.0*16*2/t/1e9, t, s);
  __m256 b[12]; __m256 m2=_mm256_set1_ps(0.999999f), c2=_mm256_set1_ps(1e-7f);
  for(int k=0;k<12;k++) b[k]=_mm256_set1_ps((float)k);
  t0=now();
  for(long i=0;i<iters;i++){
#pragma GCC unroll 12
    for(int k=0;k<12;k++) b[k]=_mm256_fmadd_ps(b[k],m2,c2);
  }
  t=now()-t0; s=0; for(int k=0;k<12;k++){float v[8];_mm256_storeu_ps(v,b[k]);for(int j=0;j<8;j++)s+=v[j];}
  printf("avx2 fma: %.1f GFLOP/s (%.3f s) [%g]\n", iters*12.0*8*2/t/1e9, t, s);
  // One dependent chain (GCC contracts a*b+c to an FMA): its latency is 4 cycles on Zen 5,
  // so ns per op / 4 is the cycle time.
  volatile float x=1.0f; float y=x; t0=now();
  for(long i=0;i<iters;i++){ __asm__ volatile("" : "+x"(y)); y = y*0.9999999f + 1e-9f; }
  t=now()-t0;
  printf("dependent fma chain: %.3f ns per op [%g]\n", t/iters*1e9, y);
  return 0;
}
