/* log — one line per event on stderr (journald picks it up under systemd).
 *
 * Lines look like "droverd: warn: zmq_bind(tcp://...): Address in use".
 * A daemon (log_daemon_timestamps) prefixes each line with its time,
 * "2024-05-01T10:00:01.250Z ", unless stderr goes to journald (which stamps
 * lines itself; $JOURNAL_STREAM says so); the CLI's lines never have one.
 * The program name is set once with log_init(); log_set_debug() enables
 * LVL_DEBUG lines. Safe to call from any thread (one fprintf per line).
 */
#ifndef DROVER_LOG_H
#define DROVER_LOG_H

enum log_level { LVL_DEBUG, LVL_INFO, LVL_WARN, LVL_ERROR };

/* Set the program name printed on every line (not copied: pass a literal). */
void log_init(const char *program);

/* Prefix every line with the UTC time (RFC 3339, milliseconds) unless
 * $JOURNAL_STREAM is set: for droverd and drover-agent, after log_init. */
void log_daemon_timestamps(void);

/* The name given to log_init ("drover" before it is called). */
const char *log_program_name(void);

/* Enable or disable LVL_DEBUG lines. */
void log_set_debug(int on);

/* printf-style; a trailing newline is added. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LVL_ERROR, __VA_ARGS__)

#endif
