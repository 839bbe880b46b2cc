/* test_b64.c - base64: RFC 4648 vectors, round trips, strict rejects, the output cap. */
#include "harness.h"

#include "common/b64.h"
#include "common/err.h"

static const char *const rfc_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const rfc_coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

TEST(b64_rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(rfc_plain) / sizeof(rfc_plain[0]); i++) {
        char *text = NULL;
        void *data = NULL;
        size_t len = 99, dlen = 99;
        ASSERT_EQ_INT(gc_b64_encode(rfc_plain[i], strlen(rfc_plain[i]), &text, &len), 0);
        ASSERT_STREQ(text, rfc_coded[i]);
        ASSERT_EQ_U64(len, strlen(rfc_coded[i]));
        ASSERT_EQ_U64(gc_b64_encoded_len(strlen(rfc_plain[i])), len);
        ASSERT_EQ_INT(gc_b64_decode(text, len, 100, &data, &dlen), 0);
        ASSERT_EQ_U64(dlen, strlen(rfc_plain[i]));
        ASSERT_STREQ((char *)data, rfc_plain[i]); /* NUL-terminated */
        free(text);
        free(data);
    }
}

TEST(b64_binary_round_trips)
{
    unsigned char buf[300];

    for (size_t n = 0; n <= sizeof(buf); n++) {
        char *text;
        void *data;
        size_t len, dlen;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)(i * 37 + n * 11 + (i >> 3));
        ASSERT_EQ_INT(gc_b64_encode(buf, n, &text, &len), 0);
        ASSERT_EQ_U64(len % 4, 0);
        ASSERT_EQ_INT(gc_b64_decode(text, len, n, &data, &dlen), 0);
        ASSERT_EQ_U64(dlen, n);
        ASSERT(n == 0 || memcmp(data, buf, n) == 0);
        free(text);
        free(data);
    }
}

static int decode_rc(const char *text)
{
    void *data = (void *)0x1;
    size_t len = 12345;
    int rc = gc_b64_decode(text, strlen(text), 1 << 20, &data, &len);
    if (rc == 0)
        free(data);
    else if (data != (void *)0x1 || len != 12345)
        harness_fail(__FILE__, __LINE__, "out-params written on error for \"%s\"", text);
    return rc;
}

TEST(b64_trailing_newline_only)
{
    ASSERT_EQ_INT(decode_rc("Zm9v\n"), 0);
    ASSERT_EQ_INT(decode_rc("Zm9v\r\n"), 0);
    ASSERT_EQ_INT(decode_rc("\n"), 0);
    ASSERT_EQ_INT(decode_rc("Zm9v\n\n"), GC_EINVAL);
    ASSERT_EQ_INT(decode_rc("Zm9v "), GC_EINVAL);
    ASSERT_EQ_INT(decode_rc("Zm9v\r"), GC_EINVAL);
    ASSERT_EQ_INT(decode_rc("Zm 9v"), GC_EINVAL);
    ASSERT_EQ_INT(decode_rc("Zm9v\nZm9v"), GC_EINVAL);
    ASSERT_EQ_INT(decode_rc(" Zm9v"), GC_EINVAL);
}

TEST(b64_rejects)
{
    static const char *const bad[] = {
        "Zg=", /* length not a multiple of 4 */
        "Zm9",  "Z",    "Zm9vY",
        "Zm9-", /* URL-safe alphabet is not accepted */
        "Zm9_", "Zm*v", "Zm9v\x80\x80\x80\x80",
        "Z===",                     /* too much padding */
        "====", "=Zg=", "Zg==Zg==", /* padding inside */
        "Z=g=", "Zh==",             /* non-zero bits after the last byte */
        "Zm9=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (decode_rc(bad[i]) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
}

TEST(b64_embedded_nul_rejected)
{
    void *data;
    size_t len;
    ASSERT_EQ_INT(gc_b64_decode("Zm\0v", 4, 100, &data, &len), GC_EINVAL);
}

TEST(b64_output_cap)
{
    void *data;
    size_t len;
    ASSERT_EQ_INT(gc_b64_decode("Zm9vYmFy", 8, 5, &data, &len), GC_ETOOBIG);
    ASSERT_EQ_INT(gc_b64_decode("Zm9vYmFy", 8, 6, &data, &len), 0);
    ASSERT_EQ_U64(len, 6);
    free(data);
    /* The cap counts decoded bytes, padding excluded. */
    ASSERT_EQ_INT(gc_b64_decode("Zm9vYg==", 8, 4, &data, &len), 0);
    free(data);
    ASSERT_EQ_INT(gc_b64_encode("x", GC_B64_ENCODE_MAX + 1, (char **)&data, &len), GC_ETOOBIG);
}

TEST(b64_null_arguments)
{
    char *text;
    void *data;
    size_t len;
    ASSERT_EQ_INT(gc_b64_encode(NULL, 1, &text, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_b64_encode("a", 1, NULL, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_b64_decode(NULL, 4, 10, &data, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_b64_decode("Zm9v", 4, 10, NULL, &len), GC_EINVAL);
    ASSERT_EQ_INT(gc_b64_encode(NULL, 0, &text, NULL), 0);
    ASSERT_STREQ(text, "");
    free(text);
}
