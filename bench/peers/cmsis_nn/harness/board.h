/* The board pieces the harness needs: semihosting output and exit, and
 * CMSDK TIMER0 as an instruction counter (see main.c). */
#ifndef SEACLR_BOARD_H
#define SEACLR_BOARD_H
#include <stdint.h>

static inline int sh_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* SYS_WRITE0: a NUL-terminated string to QEMU's stdout. */
static inline void sh_write0(const char *s) { sh_call(0x04, s); }

/* SYS_EXIT: ADP_Stopped_ApplicationExit (0x20026) makes QEMU exit 0,
 * ADP_Stopped_RunTimeErrorUnknown (0x20023) exit 1. */
static inline __attribute__((noreturn)) void sh_exit(int ok)
{
    sh_call(0x18, (const void *)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

/* CMSDK APB TIMER0: counts down at 25 MHz. */
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

static inline void timer_start(void)
{
    TIMER0_CTRL = 0;
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1;
}

static inline uint32_t timer_now(void) { return TIMER0_VALUE; }

#endif
