/* Minimal Cortex-M7 startup for QEMU mps2-an500: vector table, FPU on,
 * .data copied, .bss zeroed, main(), then semihosting SYS_EXIT. */
#include <stdint.h>
#include "board.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

void Reset_Handler(void)
{
    /* CPACR: full access to CP10/CP11 (the FPU; the hard-float ABI may
     * save FP registers even in integer code). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    sh_exit(main() == 0);
}

static void Fault_Handler(void)
{
    sh_write0("harness: fault exception\n");
    sh_exit(0);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &__stack_top, (const void *)Reset_Handler,
    (const void *)Fault_Handler, (const void *)Fault_Handler, /* NMI, HardFault */
    (const void *)Fault_Handler, (const void *)Fault_Handler, /* MemManage, BusFault */
    (const void *)Fault_Handler,                              /* UsageFault */
};
