/* config — `--config FILE` for the daemons.
 *
 * A config file is a flat YAML mapping whose keys are the long flag names
 * (either "agent-timeout" or "agent_timeout"), e.g.
 *     state-dir: /var/lib/drover
 *     listen: tcp://0.0.0.0:7070
 * Each pair is handed to the same function that handles the flag, so a
 * config file can say exactly what the command line can; flags given on
 * the command line after --config win. A value may be a nested sequence or
 * mapping (droverd's `pools:`): the setting then gets it as JSON text,
 * every scalar a JSON string, as its flag would take it.
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

/* For an apply function refusing a value: why (printf-style), added to
 * the "bad value" error config_load or config_parse_args reports. One
 * static buffer: daemons parse their settings on one thread at start. */
void config_explain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct option;

/* Parse a daemon's command line: every long option (all take their value
 * as --name VALUE, or none for a flag, which then gets "true") goes through
 * apply, and --config FILE through config_load with the same apply.
 * usage(stream) prints the help; -V/--version (which longopts must list with
 * val 'V') prints "PROGRAM VERSION" (log_init's name). Returns -1 to go on,
 * or the exit status to return from main (0 after --help or --version, 2
 * after an error, which is logged). */
int config_parse_args(int argc, char **argv, const struct option *longopts,
                      int (*apply)(const char *key, const char *value, void *arg), void *arg,
                      void (*usage)(FILE *stream));

#endif
