/* config — `--config FILE` for the daemons.
 *
 * A config file is a flat YAML mapping whose keys are the long flag names
 * (either "agent-timeout" or "agent_timeout"), e.g.
 *     state-dir: /var/lib/drover
 *     listen: tcp://0.0.0.0:7070
 * Each pair is handed to the same function that handles the flag, so a
 * config file can say exactly what the command line can; flags given on
 * the command line after --config win. The settings a daemon names as
 * nested (droverd's `pools:`) may have a sequence or mapping for value:
 * the setting gets it as JSON text, every scalar a JSON string, as its
 * flag would take it; any other nested value is an error at its line.
 */
#ifndef DROVER_CONFIG_H
#define DROVER_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Call apply(key, value, arg) for each pair in file order, with '_' in
 * keys turned into '-'. apply returns 0, -ENOENT for an unknown key, or
 * another negative errno for a bad value.
 * Returns 0, or -errno with "FILE:LINE:COL: reason" in err. */
int config_load(const char *path, int (*apply)(const char *key, const char *value, void *arg),
                void *arg, char *err, size_t errlen);
/* The same, where the keys in nested (NULL-terminated; NULL: none) may
 * have nested values, handed to apply as JSON text. */
int config_load_nested(const char *path,
                       int (*apply)(const char *key, const char *value, void *arg), void *arg,
                       const char *const *nested, char *err, size_t errlen);

/* For an apply function refusing a value: why (printf-style), added to
 * the "bad value" error config_load or config_parse_args reports. One
 * static buffer: daemons parse their settings on one thread at start. */
void config_explain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct option;

/* Parse a daemon's command line: every long option (all take their value
 * as --name VALUE, or none for a flag, which then gets "true") goes through
 * apply, and --config FILE through config_load with the same apply.
 * nested: as for config_load_nested. usage(stream) prints the help; -V/--version (which longopts
 * must list with val 'V') prints "PROGRAM VERSION" (log_init's name). Returns -1 to go on, or the
 * exit status to return from main (0 after --help or --version, 2 after an error, which is logged).
 */
int config_parse_args(int argc, char **argv, const struct option *longopts,
                      int (*apply)(const char *key, const char *value, void *arg), void *arg,
                      const char *const *nested, void (*usage)(FILE *stream));

#endif
