/*
 * Per-request arena: bump allocation from blocks, all freed at once.
 */
#ifndef SRV_ARENA_H
#define SRV_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct srv_arena_block;

struct srv_arena {
    struct srv_arena_block *head;
    char *pos;
    char *end;
    size_t total;
    /*
     * The size of the next shared block (srv__arena_alloc_block()): doubling
     * from SRV_ARENA_SMALL_GROW up to 8 KiB when the first block was small
     * (a request that waits keeps what it took for as long as it waits).
     */
    size_t grow;
};

/* The slow path of srv_arena_alloc(): a new block (or n is 0, or too large). */
void *srv__arena_alloc_block(struct srv_arena *a, size_t n);

#define SRV_ARENA_ALIGN 16
/* A first block under half of SRV_ARENA_BLOCK grows by blocks of this size first. */
#define SRV_ARENA_SMALL_GROW 1024
#define SRV_ARENA_BLOCK      8192

/*
 * First block lives inside the caller's memory: [mem, mem+size). Inline:
 * every request starts an arena in its own allocation.
 */
static inline void
srv_arena_init(struct srv_arena *a, void *mem, size_t size)
{
    uintptr_t p = (uintptr_t)mem;
    uintptr_t aligned = (p + SRV_ARENA_ALIGN - 1) & ~(uintptr_t)(SRV_ARENA_ALIGN - 1);

    a->head = NULL;
    a->total = 0;
    a->grow = mem && size < SRV_ARENA_BLOCK / 2 ? SRV_ARENA_SMALL_GROW : SRV_ARENA_BLOCK;
    if (!mem || size < aligned - p) {
        a->pos = a->end = NULL;
        return;
    }
    a->pos = (char *)aligned;
    a->end = (char *)mem + size;
}

/*
 * Allocate n bytes aligned to 16; NULL when out of memory. Inline: most
 * allocations of a request fit in the current block, a bump of a pointer.
 */
static inline void *
srv_arena_alloc(struct srv_arena *a, size_t n)
{
    size_t need = (n + SRV_ARENA_ALIGN - 1) & ~(size_t)(SRV_ARENA_ALIGN - 1);

    /* n - 1 < need: n is not 0 and the rounding did not wrap. */
    if (n - 1 < need && need <= (size_t)(a->end - a->pos)) {
        char *p = a->pos;

        a->pos += need;
        return p;
    }
    return srv__arena_alloc_block(a, n);
}

/*
 * The bytes an arena whose first block is [mem, mem+size) holds: what it
 * handed out (with alignment) while that is all from the first block; once
 * it took more blocks, the first and all of those, whole.
 */
static inline size_t
srv_arena_held(const struct srv_arena *a, const void *mem, size_t size)
{
    if (a->head)
        return size + a->total;
    return a->pos ? (size_t)(a->pos - (const char *)mem) : 0;
}

/*
 * The size of the first block for the next arena like one that holds @p held
 * bytes (srv_arena_held()), when @p first is the size used now: @p held and
 * @p slack, rounded up
 * to 64 bytes, within [@p lo, @p hi]. It grows at once and shrinks by an
 * eighth of the difference per call (rounded up, to a multiple of 16), so
 * that a mix of arenas is sized for its larger ones.
 */
static inline size_t
srv_arena_first_size(size_t first, size_t held, size_t slack, size_t lo, size_t hi)
{
    size_t want = held < hi ? (held + slack + 63) & ~(size_t)63 : hi;

    if (want < lo)
        want = lo;
    if (want > hi)
        want = hi;
    if (want >= first)
        return want;
    first = (first - (first - want + 7) / 8) & ~(size_t)15;
    return first < want ? want : first;
}

/* Copy n bytes and add a NUL; NULL when out of memory. */
static inline char *
srv_arena_strndup(struct srv_arena *a, const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? srv_arena_alloc(a, n + 1) : NULL;

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
/* Free every block the arena allocated (not the caller's first block). */
void srv_arena_free(struct srv_arena *a);

#endif /* SRV_ARENA_H */
