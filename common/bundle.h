/* bundle — a spec and the files it imports, as one submission: what
 * `drover submit` reads from disk and sends (SubmitRequest.imports), what
 * droverd checks before compiling it, and what `drover run spec -o DIR`
 * writes back (the run's RunSpecRecord).
 *
 * Paths: an imported file's path is relative to the main spec's directory,
 * normalized as spec_import_t says ('/' separated, no "." or empty
 * components, ".." only leading); spec_imports() (the compiler's) finds
 * the entries of each file and joins them. The main spec itself is named
 * by its base name among them (a file importing the main spec back gets
 * its text, and the compiler reports the cycle).
 *
 * Bounds: at most SPEC_MAX_IMPORTS files, each at most BUNDLE_MAX_FILE
 * bytes, each read once (cycles and diamonds stop at a file already
 * read). droverd bounds them again (it trusts no client), and counts the
 * total bytes against its --max-spec.
 *
 * Part of drover_spec (it calls the compiler's spec_imports); the CLI and
 * droverd link it.
 */
#ifndef DROVER_BUNDLE_H
#define DROVER_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include "drover.pb-c.h"

/* Largest spec file, main or imported, `drover submit` reads. */
#define BUNDLE_MAX_FILE (1u << 20)

/* Read every file the spec text (read from main_path; NULL for standard
 * input, whose imports are relative to the current directory) imports,
 * transitively, into *files (*n of them; the caller frees them with
 * bundle_free), in the order first met (breadth first). A file that
 * cannot be scanned for imports (not YAML) is sent as it is: the compiler
 * reports it. Returns 0, or with "FILE:LINE:COL: reason" in err (FILE
 * the importing file as on disk, at the imports entry):
 *   -ENOENT (or another -errno) an imported file cannot be read;
 *   -EFBIG  one is larger than BUNDLE_MAX_FILE;
 *   -E2BIG  more than SPEC_MAX_IMPORTS files.
 * Nothing is left in *files on failure. */
int bundle_collect(const char *main_path, const char *text, size_t len, Drover__SpecFile ***files,
                   size_t *n, char *err, size_t errlen);

/* Free n files made by bundle_collect and the array; NULL-safe. */
void bundle_free(Drover__SpecFile **files, size_t n);

/* Whether p is an import path as spec_import_t says: not empty, not
 * absolute, no empty or "." components, ".." only as leading components
 * and not only those, no control characters. */
bool bundle_path_ok(const char *p);

/* Write a submission under dir (created if missing): the main spec as
 * dir/main_name, each file at dir/PATH (directories made as needed;
 * existing files replaced, never through a symbolic link). Every path is
 * checked before anything is written: one that would leave dir (see
 * path_is_safe_relative: "..", absolute) is refused with -EPERM, naming
 * it, and nothing is written. 0, or -errno with the reason in err. */
int bundle_write(const char *dir, const char *main_name, const uint8_t *text, size_t len,
                 Drover__SpecFile *const *files, size_t n, char *err, size_t errlen);

#endif
