// How many AVX2 16-bit multiply-adds per second this CPU retires: the floor
// under the edge encoder's inner loop (BENCHMARKS.md, "Edge int8 encoder").
//
//   gcc -O2 -mavx2 bench/probes/madd_throughput.c -o /tmp/madd && /tmp/madd
//
// Six independent chains per instruction kind (enough to cover the latency,
// few enough to stay in registers), best of 5 runs; the empty asm keeps the
// chains in registers and the loop from folding.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define BODY(OP)                                                              \
    a0 = OP(a0, b); a1 = OP(a1, b); a2 = OP(a2, b);                           \
    a3 = OP(a3, b); a4 = OP(a4, b); a5 = OP(a5, b);                           \
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4),   \
                     "+x"(a5));

#define MEASURE(NAME, OP)                                                     \
    best = 1e9;                                                               \
    for (int r = 0; r < 5; r++) {                                             \
        double t = now();                                                     \
        for (long i = 0; i < N / 6; i++) { BODY(OP) }                         \
        double d = (now() - t) / N * 1e9;                                     \
        if (d < best) best = d;                                               \
    }                                                                         \
    printf("%s: %.3f ns per instruction\n", NAME, best);

int main(void) {
    const long N = 400000000;
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1),
            a2 = _mm256_set1_epi32(2), a3 = _mm256_set1_epi32(3),
            a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5),
            b = _mm256_set1_epi16(3);
    double best;
    MEASURE("vpmaddwd ymm (16 products)", _mm256_madd_epi16)
    MEASURE("vpmaddubsw ymm (32 products, saturating)", _mm256_maddubs_epi16)
    long x = 0;
    best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t = now();
        for (long i = 0; i < N; i++) {
            __asm__ volatile("add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0" : "+r"(x));
        }
        double d = (now() - t) / N / 4 * 1e9;
        if (d < best) best = d;
    }
    printf("dependent scalar add (one cycle): %.3f ns, so about %.2f GHz\n", best, 1 / best);
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                 _mm256_add_epi32(a4, a5));
    return _mm256_extract_epi32(s, 0) == 12345;
}
