/* idmap — open-addressing hash map from a non-zero uint64_t id to a pointer.
 *
 * Used for attempt ids (scheduler: attempt → task, agent: attempt →
 * process). Linear probing with backward-shift deletion, so no tombstones
 * and lookups stay short however many ids come and go. Not thread-safe.
 */
#ifndef DROVER_IDMAP_H
#define DROVER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap idmap_t;

/* New empty map; NULL on allocation failure. */
idmap_t *idmap_new(void);

/* Free the map (not the values) and NULL the pointer; accepts NULL. */
void idmap_destroy(idmap_t **map);

/* Insert or replace. id must be non-zero. */
void idmap_put(idmap_t *map, uint64_t id, void *value);

/* The value for id, or NULL. */
void *idmap_get(const idmap_t *map, uint64_t id);

/* Remove id if present; returns the value it had, or NULL. */
void *idmap_del(idmap_t *map, uint64_t id);

/* Number of entries. */
size_t idmap_size(const idmap_t *map);

/* Call fn for every entry (the map must not change during the walk). */
void idmap_each(const idmap_t *map, void (*fn)(uint64_t id, void *value, void *arg), void *arg);

#endif
