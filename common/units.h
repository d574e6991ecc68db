/* units — the quantities a spec and the daemons' flags write: memory sizes,
 * cpu and durations ("512Mi", "500m", "1h30m").
 *
 * Apart from the spec compiler (spec*.c) so that the agent, the CLI and
 * droverd's flags parse "5s" without linking it or libyaml. No state, no
 * allocation, no dependency but libc.
 */
#ifndef DROVER_UNITS_H
#define DROVER_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0, or -EINVAL on anything but the exact forms listed, with
 * *out untouched.
 *   memory: "512Mi", "2Gi", "1G", "100M", "64Ki", "1000" (bytes)
 *   cpu:    "2", "0.5", "500m"  → millicores
 *   duration: "100ms", "5s", "1m", "2h", "1h30m", "90" (seconds) → ms */
int spec_parse_memory(const char *s, uint64_t *out);
int spec_parse_cpu(const char *s, uint32_t *out_milli);
int spec_parse_duration(const char *s, uint64_t *out_ms);
/* ms written as spec_parse_duration reads it, largest unit first and zero
 * units left out ("2h", "1h30m", "1m30s500ms", "0s"), into buf (always
 * NUL-terminated; 64 bytes hold any value). */
void units_format_duration(uint64_t ms, char *buf, size_t len);
/* A duration in a pipeline spec: the same, but a bare number ("30") is
 * -EDOM (0 excepted: it is 0 in every unit): specs write the unit (Argo and Airflow users mean
 * seconds, Kubernetes users sometimes milliseconds), so "30" is refused with "write 30s", at submit
 * and at dispatch alike. Flags keep "90" = 90s. */
int spec_parse_duration_unit(const char *s, uint64_t *out_ms);

/* Decimal digits only (no sign, no spaces), at most max, into *out. 0 or
 * -EINVAL with *out untouched. */
int spec_parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif
