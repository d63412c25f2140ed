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
#define ARENA_BLOCK 8192

void *
srv__arena_alloc_block(struct srv_arena *a, size_t n)
{
    struct srv_arena_block *b;
    size_t need, bsize;
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
    bsize = need > ARENA_BLOCK / 2 ? need + sizeof(*b) : ARENA_BLOCK;
    if (bsize < need)
        return NULL;
    b = malloc(bsize);
    if (!b)
        return NULL;
    b->next = a->head;
    a->head = b;
    a->total += bsize;
    p = (char *)(b + 1);
    if (bsize == ARENA_BLOCK) {
        /* A fresh shared block becomes the current one. */
        a->pos = p + need;
        a->end = (char *)b + bsize;
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
