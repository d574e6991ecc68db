/* cgroup — per-attempt control groups: limits, placement, OOM, removal.
 *
 * The agent puts a step under a cgroup of its own, named by a path
 * relative to each hierarchy's root ("drover/<owner>/drover-<id>"). Two
 * layouts are handled: cgroup v2 (the unified hierarchy, used when it has
 * the memory controller) and cgroup v1 (separate memory, cpu and pids
 * hierarchies; also hybrid systems whose unified hierarchy has no
 * controllers). Mount points come from /proc/self/mountinfo.
 *
 * Limits: memory (no swap beyond it), cpu (CFS quota per 100 ms period,
 * from millicores) and pids. An out-of-memory kill is counted from
 * memory.events (v2) or memory.oom_control plus an OOM eventfd (v1; the
 * eventfd also sees OOMs of the cgroup itself whose victim sits in a child
 * cgroup, e.g. a container podman made below ours).
 *
 * Everything here is a few small file writes; nothing blocks for long
 * except cgroup_remove_wait(), which is for shims, cleanup children and
 * start-up (never the agent's loop).
 */
#ifndef DROVER_CGROUP_H
#define DROVER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 } cgroup_mode_t;

typedef struct {
    uint64_t memory_bytes; /* 0 = no limit */
    uint32_t cpu_milli;    /* 0 = no limit; 1000 = one cpu */
    uint32_t pids_max;     /* 0 = no limit */
} cgroup_limits_t;

typedef struct cgroup cgroup_t;

/* Which layout this process can use to limit steps: CGROUP_V2 when the
 * unified hierarchy has the memory controller and is writable, else
 * CGROUP_V1 when a writable v1 memory hierarchy is mounted, else
 * CGROUP_NONE with the reason in why (may be NULL). */
cgroup_mode_t cgroup_mode(char *why, size_t whylen);

/* Whether /sys/fs/cgroup itself is cgroup2 (pure v2): what runc and
 * podman use to pick their own layout. */
bool cgroup_unified_only(void);

/* Create the cgroup rel (e.g. "drover/ab12/drover-42") in every hierarchy
 * the mode uses, with the given limits. lim NULL: a cgroup that only keeps
 * track of a step's processes (v1: the pids hierarchy alone, the cheapest),
 * so that everything the step started, even what left its process group,
 * can be found and killed. Returns NULL
 * with err set when cgroups are unusable or a write fails. The caller
 * destroys it with cgroup_destroy and removes the directories with
 * cgroup_remove. */
cgroup_t *cgroup_new(const char *rel, const cgroup_limits_t *lim, char *err, size_t errlen);

/* The relative path given to cgroup_new (owned by cg). */
const char *cgroup_rel(const cgroup_t *cg);

/* Move the calling process into cg (all its hierarchies) through file
 * descriptors opened by cgroup_new: async-signal-safe, for a child between
 * fork and exec. 0 or -errno. */
int cgroup_join(const cgroup_t *cg);

/* The file descriptors cg holds open (at most max written to fds): what a
 * forked child that closes everything else must keep. Returns the count. */
size_t cgroup_fds(const cgroup_t *cg, int *fds, size_t max);

/* Out-of-memory kills in cg (and its children on v2) since it was created.
 * 0 or -errno (cgroups without a memory limit count 0). */
int cgroup_oom_kills(cgroup_t *cg, uint64_t *count);

/* Send sig to every process in rel and its children (in the memory or
 * unified hierarchy). Returns how many were signalled (0 when the cgroup
 * does not exist). */
int cgroup_signal(const char *rel, int sig);

/* Remove rel and its children in every mounted hierarchy, deepest first;
 * with kill, SIGKILL what still runs there first. 0, -EBUSY when processes
 * have not left yet (retry shortly), or -errno. A missing cgroup is not an
 * error. */
int cgroup_remove(const char *rel, bool kill);

/* cgroup_remove(rel, true) until it succeeds or timeout_ms passes (blocks:
 * shims, cleanup children and start-up only). 0 or -errno. */
int cgroup_remove_wait(const char *rel, int timeout_ms);

/* Remove every child cgroup of rel (e.g. all attempts of one agent after
 * a crash), killing what runs there. Returns how many were removed. */
int cgroup_remove_children(const char *rel, int timeout_ms);

/* The file that counts OOM kills of the cgroup rel as runc lays it out
 * (memory.events on pure v2, memory/.../memory.oom_control on v1), or NULL
 * when no memory hierarchy is mounted. The caller frees it. */
char *cgroup_oom_file(const char *rel);

/* Parse the "oom_kill N" line of a memory.events or memory.oom_control
 * file. 0 or -errno (-ENOENT when the file does not exist). */
int cgroup_read_oom_kill(const char *path, uint64_t *count);

/* Close what cgroup_new opened and free; the directories stay (see
 * cgroup_remove). Accepts NULL; NULLs the pointer. */
void cgroup_destroy(cgroup_t **cg);

#endif
