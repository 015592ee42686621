/* unicode.c — UTF-8 validation over the decoder of unicode.h (the class tables are
 * in the generated unicode_tables.c). Pure functions; no state. */
#include "unicode.h"

#include <string.h>

size_t uni_first_invalid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (p[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t k = uni_decode(p + i, n - i, &cp);
        if (cp == UINT32_MAX) return i;
        i += k;
    }
    return n;
}
