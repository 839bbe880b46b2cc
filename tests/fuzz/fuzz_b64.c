/*
 * fuzz_b64.c - gc_b64_decode() and gc_b64_encode() (src/common/b64.c).
 *
 * Properties, from b64.h:
 * - decode(text) succeeds only when text (less one trailing newline) is exactly
 *   encode(decode(text)): the decoder is strict;
 * - the decoded buffer has a NUL after its bytes, and its length is what the
 *   text's length and padding say;
 * - GC_ETOOBIG exactly when the decoded size exceeds max_out;
 * - decode(encode(data)) == data for any bytes.
 */
#include <string.h>

#include "common/b64.h"
#include "common/err.h"
#include "fuzz.h"

static void check_decode(const char *text, size_t len)
{
    void *data = NULL;
    char *again = NULL;
    size_t data_len = 0, again_len = 0, body = len;
    int rc;

    rc = gc_b64_decode(text, len, SIZE_MAX, &data, &data_len);
    FUZZ_CHECK(rc == 0 || rc == GC_EINVAL || rc == GC_ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(data == NULL && data_len == 0); /* out-params only on success */
        return;
    }
    if (body > 0 && text[body - 1] == '\n') {
        body--;
        if (body > 0 && text[body - 1] == '\r')
            body--;
    }
    FUZZ_CHECK(data != NULL);
    FUZZ_CHECK(((const char *)data)[data_len] == '\0');
    FUZZ_CHECK(data_len <= body / 4 * 3 && data_len + 2 >= body / 4 * 3);

    /* Strict: the accepted text is the canonical encoding. */
    FUZZ_CHECK(gc_b64_encode(data, data_len, &again, &again_len) == 0);
    FUZZ_CHECK(again_len == body && again_len == gc_b64_encoded_len(data_len));
    FUZZ_CHECK(memcmp(again, text, body) == 0);
    free(again);

    /* The size cap: one byte short is refused, the exact size is accepted. */
    if (data_len > 0) {
        void *capped = NULL;
        size_t capped_len = 0;
        FUZZ_CHECK(gc_b64_decode(text, len, data_len - 1, &capped, &capped_len) == GC_ETOOBIG);
        FUZZ_CHECK(capped == NULL);
        FUZZ_CHECK(gc_b64_decode(text, len, data_len, &capped, &capped_len) == 0);
        FUZZ_CHECK(capped_len == data_len && memcmp(capped, data, data_len) == 0);
        free(capped);
    }
    free(data);
}

static void check_encode(const uint8_t *data, size_t size)
{
    char *text = NULL;
    void *back = NULL;
    size_t text_len = 0, back_len = 0;

    FUZZ_CHECK(gc_b64_encode(data, size, &text, &text_len) == 0);
    FUZZ_CHECK(text_len == gc_b64_encoded_len(size) && strlen(text) == text_len);
    FUZZ_CHECK(gc_b64_decode(text, text_len, size, &back, &back_len) == 0);
    FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode((const char *)data, size);
    check_encode(data, size);
    return 0;
}
