/* suggest — "did you mean ...?": the closest of a few known words to an
 * unknown one (a mistyped command, flag, spec key or step name).
 *
 * One rule for every caller: the distance is Damerau-Levenshtein (insert,
 * delete, substitute, swap two neighbours); a candidate is offered when it
 * is at most 1 edit away (2 for words of 5 bytes or more) and fewer edits
 * than the word has bytes ('q' is not a typo of 'a'), the nearest
 * first (the earliest candidate on a tie); failing that, the one candidate
 * the word is a prefix of (words of 2 bytes or more). No allocation; words
 * longer than 64 bytes are never close.
 */
#ifndef DROVER_SUGGEST_H
#define DROVER_SUGGEST_H

#include <stddef.h>

/* Edit distance of a[0..n) and the string b (SIZE_MAX when either is
 * longer than 64 bytes). */
size_t suggest_distance(const char *a, size_t n, const char *b);

/* The closest of candidates (NULL-terminated) to word[0..len), or NULL
 * when none is close. The result points into candidates. */
const char *suggest_closest(const char *word, size_t len, const char *const *candidates);

#endif
