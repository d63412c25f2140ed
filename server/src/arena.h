/*
 * Per-request arena: bump allocation from blocks, all freed at once.
 */
#ifndef SRV_ARENA_H
#define SRV_ARENA_H

#include <stddef.h>

struct srv_arena_block;

struct srv_arena {
    struct srv_arena_block *head;
    char *pos;
    char *end;
    size_t total;
};

/* First block lives inside the caller's memory: [mem, mem+size). */
void srv_arena_init(struct srv_arena *a, void *mem, size_t size);
/* Allocate n bytes aligned to 16; NULL when out of memory. */
void *srv_arena_alloc(struct srv_arena *a, size_t n);
/* Copy n bytes and add a NUL; NULL when out of memory. */
char *srv_arena_strndup(struct srv_arena *a, const char *s, size_t n);
/* Free every block the arena allocated (not the caller's first block). */
void srv_arena_free(struct srv_arena *a);

#endif /* SRV_ARENA_H */
