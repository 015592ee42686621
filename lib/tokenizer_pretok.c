/* tokenizer_pretok.c — GPT-2's pre-tokenizer without a regex engine, and the U+FFFD
 * replacement of invalid UTF-8.
 *
 * The pattern (tiktoken "gpt2", Rust regex semantics: \s = White_Space, \p{L}, \p{N}
 * = general categories L*, N*):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Leftmost-first alternation, each alternative greedy. At a position that starts
 *   - "'" + s t m d / re ve ll (case-sensitive)      -> the contraction;
 *   - [" "] letter / number / other                  -> (space +) the run of that class;
 *   - whitespace (including a " " not followed by a letter/number/other):
 *     the whole run when it ends the text; else the run minus its last character
 *     when the run has two or more (\s+(?!\S) backtracks by one), else the single
 *     character (\s+).
 * Invalid UTF-8 (only present in TOK_UTF8_KEEP mode): each maximal invalid subsequence
 * is a piece by itself and counts as \S for the lookahead.
 * Must never allocate or touch anything but its arguments.
 */
#include "tokenizer.h"
#include "unicode.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

enum { CLS_INVALID = 4 };

/* Class and byte length of the character at s[i] (i < n). */
static inline int class_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    unsigned c = s[i];
    if (c < 0x80) { *len = 1; return uni_latin1[c]; }
    uint32_t cp;
    *len = uni_decode(s + i, n - i, &cp);
    if (cp == UINT32_MAX) return CLS_INVALID;
    return uni_class(cp);
}

size_t tok_pretoken_end(const char *text, size_t n, size_t i) {
    const unsigned char *s = (const unsigned char *)text;
    size_t l;
    int c = class_at(s, n, i, &l);
    if (c == CLS_INVALID) return i + l;

    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (s[i] == '\'' && i + 1 < n) {
        unsigned x = s[i + 1];
        if (x == 's' || x == 't' || x == 'm' || x == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned y = s[i + 2];
            if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l'))
                return i + 3;
        }
    }

    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
    size_t j = i;
    if (s[i] == ' ' && i + 1 < n) {
        size_t l2;
        int c2 = class_at(s, n, i + 1, &l2);
        if (c2 == UNI_LETTER || c2 == UNI_NUMBER || c2 == UNI_OTHER) { j = i + 1; c = c2; l = l2; }
    }
    if (c != UNI_SPACE) {
        size_t k = j + l;
        while (k < n) {
            size_t lk;
            if (class_at(s, n, k, &lk) != c) break;
            k += lk;
        }
        return k;
    }

    /* '\s+(?!\S)' then '\s+' */
    size_t last = i, k = i + l;
    while (k < n) {
        size_t lk;
        if (class_at(s, n, k, &lk) != UNI_SPACE) break;
        last = k;
        k += lk;
    }
    if (k == n) return n;            /* run ends the text: (?!\S) holds at the end */
    if (last > i) return last;       /* leave the last whitespace char to what follows */
    return k;                        /* a single whitespace char before \S */
}

size_t tok_utf8_replace(const char *text, size_t n, ByteBuf *out) {
    const unsigned char *s = (const unsigned char *)text;
    out->n = 0;
    size_t count = 0, i = 0;
    while (i < n) {
        size_t bad = i + uni_first_invalid(text + i, n - i);
        bytebuf_append(out, text + i, bad - i);
        if (bad >= n) break;
        uint32_t cp;
        size_t k = uni_decode(s + bad, n - bad, &cp);
        bytebuf_append(out, "\xEF\xBF\xBD", 3);
        count++;
        i = bad + k;
    }
    return count;
}
