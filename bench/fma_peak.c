/* This machine's fp32 FMA peak: NACC independent chains of vector FMAs per thread, enough
   to hide the FMA latency on every x86 core we meet (4 cycles x 2 ports = 8 in flight at
   least), so the loop runs at the issue rate of the FMA units and nothing else. Vectors are
   as wide as the build allows (16 floats with AVX-512, 8 with AVX2), so the figure is the
   peak of the widest instructions this CPU has. Built and run by fma_peak.py. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef __AVX512F__
#define WIDTH 16
#else
#define WIDTH 8
#endif
#define NACC 24

typedef float vfloat __attribute__((vector_size(WIDTH * 4)));

static long iterations;

static void *chains(void *out) {
    vfloat acc[NACC], a, b;
    for (int i = 0; i < WIDTH; i++) { a[i] = 1.0000001f; b[i] = 0.9999999f; }
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < WIDTH; i++) acc[j][i] = (float)j;
    for (long n = 0; n < iterations; n++) {
#pragma GCC unroll 24
        for (int j = 0; j < NACC; j++) acc[j] = acc[j] * a + b;
        /* Keeps gcc from hoisting or folding the chains: `a` may have changed. */
        __asm__ volatile("" : "+v"(a));
    }
    float sum = 0;
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < WIDTH; i++) sum += acc[j][i];
    *(float *)out = sum;  /* used, so nothing is dead code */
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iterations = argc > 2 ? atol(argv[2]) : 50000000L;
    if (threads < 1 || threads > 256) return 2;
    pthread_t tid[256];
    float sink[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, chains, &sink[i]);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    double flops = 2.0 * WIDTH * NACC * (double)iterations * threads;
    printf("%d %d %.3f\n", threads, WIDTH, flops / seconds / 1e9);
    return sink[0] == 12345.0f;  /* never true; reads the sink */
}
