/* idmap — see idmap.h. Capacity is a power of two kept under 70% full. */
#include "idmap.h"

#include <stdlib.h>

#include "util.h"

struct idmap {
    uint64_t *keys; /* 0 = empty slot */
    void **values;
    size_t cap, count;
};

static size_t slot_of(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

idmap_t *idmap_new(void)
{
    idmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 64;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->values = calloc(m->cap, sizeof *m->values);
    if (!m->keys || !m->values) {
        idmap_destroy(&m);
        return NULL;
    }
    return m;
}

void idmap_destroy(idmap_t **map)
{
    if (!map || !*map)
        return;
    free((*map)->keys);
    free((*map)->values);
    free(*map);
    *map = NULL;
}

static void grow(idmap_t *m)
{
    uint64_t *old_keys = m->keys;
    void **old_values = m->values;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->values = xcalloc(m->cap, sizeof *m->values);
    m->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old_keys[i])
            idmap_put(m, old_keys[i], old_values[i]);
    free(old_keys);
    free(old_values);
}

void idmap_put(idmap_t *m, uint64_t id, void *value)
{
    if ((m->count + 1) * 10 > m->cap * 7)
        grow(m);
    size_t i = slot_of(id, m->cap);
    while (m->keys[i] && m->keys[i] != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->count++;
    m->keys[i] = id;
    m->values[i] = value;
}

void *idmap_get(const idmap_t *m, uint64_t id)
{
    for (size_t i = slot_of(id, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == id)
            return m->values[i];
    return NULL;
}

void *idmap_del(idmap_t *m, uint64_t id)
{
    size_t i = slot_of(id, m->cap);
    while (m->keys[i] && m->keys[i] != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        return NULL;
    void *value = m->values[i];
    m->keys[i] = 0;
    m->count--;
    /* Backward-shift: move later entries of the probe run into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        size_t home = slot_of(m->keys[j], m->cap);
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (between)
            continue;
        m->keys[i] = m->keys[j];
        m->values[i] = m->values[j];
        m->keys[j] = 0;
        i = j;
    }
    return value;
}

size_t idmap_size(const idmap_t *m)
{
    return m->count;
}

void idmap_each(const idmap_t *m, void (*fn)(uint64_t id, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            fn(m->keys[i], m->values[i], arg);
}
