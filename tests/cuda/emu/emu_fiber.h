/* emu_fiber.h — EMULATION ONLY: the context switch under the emulator's fibers (one per
 * CUDA thread of a block, emu_runtime.cpp). glibc's swapcontext saves the signal mask
 * with a system call and the FPU environment on every switch: it was ~85% of the time
 * of a tool run on the emulator (tests/cuda/emu/run.sh tools). On x86-64 this is a
 * plain switch of the callee-saved registers, the stack pointer, MXCSR and the x87
 * control word (what the SysV ABI says survives a call), ~50× faster; elsewhere, and
 * under AddressSanitizer (which must see the stack switches), it is ucontext.
 *
 *   emu_ctx_start(c, stack, bytes, link, fn, arg)  c will run fn(arg) on the stack; when
 *                                                  fn returns, it switches to link
 *   emu_ctx_swap(from, to)                         saves the running context in from,
 *                                                  runs to
 * Include it once (it defines the switch in assembly). */
#ifndef EMU_FIBER_H
#define EMU_FIBER_H
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(EMU_UCONTEXT)

struct emu_ctx { void *sp; };

extern "C" void emu_ctx_switch(void **save_sp, void *to_sp);
asm(".text\n"
    ".globl emu_ctx_switch\n"
    ".hidden emu_ctx_switch\n"
    ".type emu_ctx_switch, @function\n"
    ".p2align 4\n"
    "emu_ctx_switch:\n"                  /* rdi: where to save rsp; rsi: the rsp to run */
    "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n    pushq %r15\n"
    "    subq $8, %rsp\n    stmxcsr (%rsp)\n    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n    fldcw 4(%rsp)\n    addq $8, %rsp\n"
    "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n    popq %rbp\n"
    "    ret\n"
    ".size emu_ctx_switch, .-emu_ctx_switch\n"
    ".type emu_ctx_entry, @function\n"
    ".p2align 4\n"
    "emu_ctx_entry:\n"                   /* a new context: rbx arg, r12 fn, r13 &link->sp, r14 &self->sp */
    "    movl %ebx, %edi\n    call *%r12\n"
    "    movq %r14, %rdi\n    movq (%r13), %rsi\n    call emu_ctx_switch\n"
    "    ud2\n"                          /* never resumed */
    ".size emu_ctx_entry, .-emu_ctx_entry\n");
extern "C" void emu_ctx_entry(void);

static inline void emu_ctx_start(emu_ctx *c, char *stack, size_t bytes, emu_ctx *link,
                                 void (*fn)(int), int arg) {
    uint64_t *sp = (uint64_t *)(((uintptr_t)(stack + bytes) & ~(uintptr_t)15) - 80);
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | (uint64_t)fpucw << 32;   /* the switch's ldmxcsr, fldcw */
    sp[1] = 0;                                          /* r15 */
    sp[2] = (uint64_t)(uintptr_t)&c->sp;                /* r14 */
    sp[3] = (uint64_t)(uintptr_t)&link->sp;             /* r13 */
    sp[4] = (uint64_t)(uintptr_t)fn;                    /* r12 */
    sp[5] = (uint64_t)(uint32_t)arg;                    /* rbx */
    sp[6] = 0;                                          /* rbp */
    sp[7] = (uint64_t)(uintptr_t)emu_ctx_entry;         /* ret: rsp + 64 is 16-aligned */
    c->sp = sp;
}
static inline void emu_ctx_swap(emu_ctx *from, emu_ctx *to) { emu_ctx_switch(&from->sp, to->sp); }

#else
#include <ucontext.h>

struct emu_ctx { ucontext_t uc; };

static inline void emu_ctx_start(emu_ctx *c, char *stack, size_t bytes, emu_ctx *link,
                                 void (*fn)(int), int arg) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = bytes;
    c->uc.uc_link = &link->uc;
    makecontext(&c->uc, (void (*)())fn, 1, arg);
}
static inline void emu_ctx_swap(emu_ctx *from, emu_ctx *to) { swapcontext(&from->uc, &to->uc); }

#endif
#endif
