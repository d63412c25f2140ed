/*
 * Per-request arena. The first block is embedded in the request allocation,
 * so a typical request costs one malloc(); larger needs chain more blocks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct srv_arena_block {
    struct srv_arena_block *next;
    /* Keeps the data that follows aligned to 16. */
    uint64_t pad;
};

#define ARENA_ALIGN SRV_ARENA_ALIGN

void *
srv__arena_alloc_block(struct srv_arena *a, size_t n)
{
    struct srv_arena_block *b;
    size_t need, bsize;
    int shared;
    char *p;

    if (n == 0)
        n = 1;
    need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n)
        return NULL;
    if (a->pos && (size_t)(a->end - a->pos) >= need) {
        p = a->pos;
        a->pos += need;
        return p;
    }
    /* Larger than half a shared block: a block of its own, the current one stays. */
    shared = need <= a->grow / 2;
    bsize = shared ? a->grow : need + sizeof(*b);
    if (bsize < need)
        return NULL;
    b = malloc(bsize);
    if (!b)
        return NULL;
    b->next = a->head;
    a->head = b;
    a->total += bsize;
    p = (char *)(b + 1);
    if (shared) {
        /* A fresh shared block becomes the current one. */
        a->pos = p + need;
        a->end = (char *)b + bsize;
        if (a->grow < SRV_ARENA_BLOCK)
            a->grow *= 2;
    }
    return p;
}

void
srv_arena_free(struct srv_arena *a)
{
    struct srv_arena_block *b = a->head;

    while (b) {
        struct srv_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->pos = a->end = NULL;
    a->total = 0;
}
