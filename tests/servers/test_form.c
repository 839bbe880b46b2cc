/* test_form.c - urlencoded and multipart/form-data bodies, caps, typed getters. */
#include "harness.h"

#include "common/err.h"
#include "common/form.h"

#define URLENC "application/x-www-form-urlencoded"

static struct gc_form *parse_ok(const char *ctype, const char *body, size_t len)
{
    struct gc_form *form = NULL;
    char err[256] = "";
    int rc = gc_form_parse(ctype, body, len, &form, err, sizeof(err));
    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "parse failed (%d): %s", rc, err);
    return form;
}

static int parse_rc(const char *ctype, const char *body, size_t len, char *err, size_t errlen)
{
    struct gc_form *form = (struct gc_form *)0x1;
    int rc = gc_form_parse(ctype, body, len, &form, err, errlen);
    if (rc == 0)
        gc_form_free(form);
    else if (form != (struct gc_form *)0x1)
        harness_fail(__FILE__, __LINE__, "*ret_form written on error");
    return rc;
}

static const char *value_of(const struct gc_form *form, const char *name)
{
    const struct gc_form_field *f = gc_form_get(form, name);
    return f != NULL ? f->value : NULL;
}

TEST(form_urlencoded_basic)
{
    const char *body = "prompt=a+red+cube&seed=42";
    struct gc_form *form = parse_ok(URLENC, body, strlen(body));
    ASSERT_EQ_U64(form->count, 2);
    ASSERT_STREQ(value_of(form, "prompt"), "a red cube");
    ASSERT_STREQ(value_of(form, "seed"), "42");
    ASSERT(gc_form_get(form, "missing") == NULL);
    ASSERT(gc_form_get(form, "prompt")->filename == NULL);
    gc_form_free(form);
}

TEST(form_urlencoded_escapes_and_empties)
{
    const char *body = "&&prompt=caf%C3%A9%26more%3d%2B&flag&empty=&a%20b=x+y&";
    struct gc_form *form =
        parse_ok("Application/X-WWW-Form-Urlencoded; charset=UTF-8", body, strlen(body));
    ASSERT_EQ_U64(form->count, 4);
    ASSERT_STREQ(value_of(form, "prompt"), "caf\xc3\xa9&more=+");
    ASSERT_STREQ(value_of(form, "flag"), "");
    ASSERT_STREQ(value_of(form, "empty"), "");
    ASSERT_STREQ(value_of(form, "a b"), "x y");
    gc_form_free(form);

    /* A value may hold a NUL byte; its length says so. */
    form = parse_ok(URLENC, "v=a%00b", 7);
    ASSERT_EQ_U64(gc_form_get(form, "v")->value_len, 3);
    ASSERT(memcmp(gc_form_get(form, "v")->value, "a\0b", 3) == 0);
    gc_form_free(form);

    /* The first of repeated fields wins. */
    form = parse_ok(URLENC, "seed=1&seed=2", 13);
    ASSERT_STREQ(value_of(form, "seed"), "1");
    gc_form_free(form);

    form = parse_ok(URLENC, "", 0);
    ASSERT_EQ_U64(form->count, 0);
    gc_form_free(form);
}

TEST(form_urlencoded_rejects)
{
    static const char *const bad[] = {"prompt=%zz", "prompt=%4", "prompt=abc%", "=value",
                                      "na%00me=x"};
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (parse_rc(URLENC, bad[i], strlen(bad[i]), err, sizeof(err)) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
        ASSERT(err[0] != '\0');
    }
}

TEST(form_content_type_rejects)
{
    char err[256];
    ASSERT_EQ_INT(parse_rc(NULL, "a=1", 3, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(parse_rc("application/json", "{}", 2, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "unsupported content-type") != NULL);
    ASSERT_EQ_INT(parse_rc("multipart/form-data", "x", 1, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "boundary") != NULL);
    ASSERT_EQ_INT(parse_rc("multipart/form-data; boundary=", "x", 1, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(parse_rc("multipart/form-data; boundary=\"abc", "x", 1, err, sizeof(err)),
                  GC_EINVAL);
    ASSERT_EQ_INT(
        parse_rc("multipart/form-data; boundary=\"ends in space \"", "x", 1, err, sizeof(err)),
        GC_EINVAL);
    ASSERT_EQ_INT(parse_rc("multipart/form-data; boundary=a; boundary=b", "x", 1, err, sizeof(err)),
                  GC_EINVAL);
    ASSERT_EQ_INT(parse_rc("multipart/form-data; garbage", "x", 1, err, sizeof(err)), GC_EINVAL);
}

#define MP_BODY(b)                                                                                 \
    "preamble to ignore\r\n"                                                                       \
    "--" b "\r\n"                                                                                  \
    "Content-Disposition: form-data; name=\"prompt\"\r\n"                                          \
    "\r\n"                                                                                         \
    "a blue sphere\r\n"                                                                            \
    "--" b "\r\n"                                                                                  \
    "content-disposition: form-data; name=seed\r\n"                                                \
    "\r\n"                                                                                         \
    "7\r\n"                                                                                        \
    "--" b "--\r\n"                                                                                \
    "epilogue"

TEST(form_multipart_unquoted_boundary)
{
    const char body[] = MP_BODY("----WebKitFormBoundary7MA4YWxkTrZu0gW");
    struct gc_form *form =
        parse_ok("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", body,
                 sizeof(body) - 1);
    ASSERT_EQ_U64(form->count, 2);
    ASSERT_STREQ(value_of(form, "prompt"), "a blue sphere");
    ASSERT_STREQ(value_of(form, "seed"), "7");
    gc_form_free(form);
}

TEST(form_multipart_quoted_boundary)
{
    const char body[] = MP_BODY("gc (quoted) boundary:=?");
    struct gc_form *form = parse_ok("MULTIPART/FORM-DATA ; charset=utf-8; "
                                    "BOUNDARY=\"gc (quoted) boundary:=?\"",
                                    body, sizeof(body) - 1);
    ASSERT_EQ_U64(form->count, 2);
    ASSERT_STREQ(value_of(form, "prompt"), "a blue sphere");
    gc_form_free(form);

    /* The body may open with the delimiter (no preamble), as curl sends it. */
    const char plain[] = "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                         "--xyz--";
    form = parse_ok("multipart/form-data; boundary=\"xyz\"", plain, sizeof(plain) - 1);
    ASSERT_STREQ(value_of(form, "a"), "1");
    gc_form_free(form);
}

TEST(form_multipart_file_part)
{
    const char body[] =
        "--B\r\n"
        "Content-Disposition: form-data; name=\"upload\"; filename=\"m \\\"x\\\".ply\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "X-Ignored: yes\r\n"
        "\r\n"
        "bin\0ary\r\n--not-the-boundary\r\nstill data\r\n"
        "--B\r\n"
        "Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n"
        "\r\n"
        "\r\n"
        "--B--";
    struct gc_form *form = parse_ok("multipart/form-data; boundary=B", body, sizeof(body) - 1);
    const struct gc_form_field *f = gc_form_get(form, "upload");
    ASSERT(f != NULL);
    ASSERT_STREQ(f->filename, "m \"x\".ply");
    ASSERT_STREQ(f->content_type, "application/octet-stream");
    const char want[] = "bin\0ary\r\n--not-the-boundary\r\nstill data";
    ASSERT_EQ_U64(f->value_len, sizeof(want) - 1);
    ASSERT(memcmp(f->value, want, sizeof(want) - 1) == 0);
    f = gc_form_get(form, "empty");
    ASSERT_STREQ(f->filename, "");
    ASSERT_EQ_U64(f->value_len, 0);
    ASSERT(f->content_type == NULL);
    gc_form_free(form);
}

TEST(form_multipart_missing_final_boundary)
{
    char err[256];
    const char *ct = "multipart/form-data; boundary=B";
    static const char *const bad[] = {
        /* no closing delimiter at all */
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",
        /* the last delimiter is not closed with "--" */
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B-",
        /* truncated in the headers */
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n",
        /* no boundary in the body */
        "just text",
        "--B",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (parse_rc(ct, bad[i], strlen(bad[i]), err, sizeof(err)) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "accepted case %zu", i);
        ASSERT(err[0] != '\0');
    }
    parse_rc(ct, bad[1], strlen(bad[1]), err, sizeof(err));
    ASSERT(strstr(err, "closing") != NULL);
}

TEST(form_multipart_malformed_parts)
{
    char err[256];
    const char *ct = "multipart/form-data; boundary=B";
    static const char *const bad[] = {
        /* no content-disposition */
        "--B\r\nContent-Type: text/plain\r\n\r\n1\r\n--B--",
        /* no name */
        "--B\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\n1\r\n--B--",
        /* not form-data */
        "--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\n1\r\n--B--",
        /* a header line without a colon, a folded line */
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nbogus\r\n\r\n1\r\n--B--",
        "--B\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n1\r\n--B--",
        /* an unterminated quoted name */
        "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\n1\r\n--B--",
        /* garbage after the delimiter */
        "--Bxyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--B--",
        /* bare LF line ends */
        "--B\nContent-Disposition: form-data; name=\"a\"\n\n1\n--B--",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_rc(ct, bad[i], strlen(bad[i]), err, sizeof(err)) != GC_EINVAL)
            harness_fail(__FILE__, __LINE__, "accepted case %zu", i);
}

TEST(form_boundary_length_cap)
{
    char ct[160], body[400];
    struct gc_form *form;
    char b70[71], b71[72], err[256];

    memset(b70, 'x', 70);
    b70[70] = '\0';
    memset(b71, 'x', 71);
    b71[71] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b70);
    snprintf(body, sizeof(body),
             "--%s\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--%s--", b70, b70);
    form = parse_ok(ct, body, strlen(body));
    ASSERT_STREQ(value_of(form, "p"), "v");
    gc_form_free(form);
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b71);
    ASSERT_EQ_INT(parse_rc(ct, body, strlen(body), err, sizeof(err)), GC_EINVAL);
}

TEST(form_field_caps)
{
    char body[4096], err[256];
    size_t o = 0;
    struct gc_form *form;

    for (int i = 0; i < GC_FORM_FIELDS_MAX; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "f%d=%d&", i, i);
    form = parse_ok(URLENC, body, o);
    ASSERT_EQ_U64(form->count, GC_FORM_FIELDS_MAX);
    ASSERT_STREQ(value_of(form, "f63"), "63");
    gc_form_free(form);
    o += (size_t)snprintf(body + o, sizeof(body) - o, "one=more");
    ASSERT_EQ_INT(parse_rc(URLENC, body, o, err, sizeof(err)), GC_ETOOBIG);
    ASSERT(strstr(err, "fields") != NULL);

    /* Name length: 256 bytes pass, 257 do not (urlencoded and multipart). */
    memset(body, 'n', GC_FORM_NAME_MAX);
    strcpy(body + GC_FORM_NAME_MAX, "=v");
    form = parse_ok(URLENC, body, strlen(body));
    gc_form_free(form);
    memset(body, 'n', GC_FORM_NAME_MAX + 1);
    strcpy(body + GC_FORM_NAME_MAX + 1, "=v");
    ASSERT_EQ_INT(parse_rc(URLENC, body, strlen(body), err, sizeof(err)), GC_EINVAL);
    o = (size_t)snprintf(body, sizeof(body), "--B\r\nContent-Disposition: form-data; name=\"");
    memset(body + o, 'n', GC_FORM_NAME_MAX + 1);
    o += GC_FORM_NAME_MAX + 1;
    o += (size_t)snprintf(body + o, sizeof(body) - o, "\"\r\n\r\nv\r\n--B--");
    ASSERT_EQ_INT(parse_rc("multipart/form-data; boundary=B", body, o, err, sizeof(err)),
                  GC_EINVAL);
}

TEST(form_body_cap)
{
    char err[256];
    size_t len = GC_FORM_BODY_MAX + 1;
    char *big = calloc(1, len);
    ASSERT(big != NULL);
    memset(big, 'a', len);
    ASSERT_EQ_INT(parse_rc(URLENC, big, len, err, sizeof(err)), GC_ETOOBIG);
    free(big);
}

TEST(form_part_header_cap)
{
    size_t len = GC_FORM_PART_HEADERS_MAX + 200, o;
    char *body = malloc(len + 64), err[256];
    ASSERT(body != NULL);
    o = (size_t)sprintf(body, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ");
    memset(body + o, 'p', len - o);
    o = len;
    o += (size_t)sprintf(body + o, "\r\n\r\nv\r\n--B--");
    ASSERT_EQ_INT(parse_rc("multipart/form-data; boundary=B", body, o, err, sizeof(err)),
                  GC_EINVAL);
    ASSERT(strstr(err, "limit") != NULL);
    free(body);
}

TEST(form_get_text)
{
    char err[256];
    const char *s = NULL;
    static char body[8192];
    const char *text = "p=caf%C3%A9&bad=%FF%FE&nul=a%00b&over=%C0%AF";
    struct gc_form *form = parse_ok(URLENC, text, strlen(text));

    ASSERT_EQ_INT(gc_form_get_text(form, "p", true, 4, &s, err, sizeof(err)), 0);
    ASSERT_STREQ(s, "caf\xc3\xa9");
    ASSERT_EQ_INT(gc_form_get_text(form, "p", true, 3, &s, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(gc_form_get_text(form, "bad", true, 100, &s, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "UTF-8") != NULL);
    ASSERT_EQ_INT(gc_form_get_text(form, "nul", true, 100, &s, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(gc_form_get_text(form, "over", true, 100, &s, err, sizeof(err)), GC_EINVAL);
    s = "untouched";
    ASSERT_EQ_INT(gc_form_get_text(form, "missing", false, 100, &s, err, sizeof(err)), 0);
    ASSERT_STREQ(s, "untouched");
    ASSERT_EQ_INT(gc_form_get_text(form, "missing", true, 100, &s, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "missing form field 'missing'") != NULL);
    gc_form_free(form);

    /* 1024 two-byte characters are 1024 characters. */
    size_t o = (size_t)sprintf(body, "prompt=");
    for (int i = 0; i < 1024; i++)
        o += (size_t)sprintf(body + o, "%%C3%%A9");
    form = parse_ok(URLENC, body, o);
    ASSERT_EQ_INT(gc_form_get_text(form, "prompt", true, 1024, &s, err, sizeof(err)), 0);
    ASSERT_EQ_INT(gc_form_get_text(form, "prompt", true, 1023, &s, err, sizeof(err)), GC_EINVAL);
    gc_form_free(form);
}

TEST(form_get_int)
{
    char err[256];
    int64_t v = 777;
    const char *body = "a=+42&b=-5&c=%2042%20&d=12a&e=&f=9223372036854775807&g=9223372036854775808"
                       "&h=-9223372036854775808&i=-&j=0x10";
    struct gc_form *form = parse_ok(URLENC, body, strlen(body));

    ASSERT_EQ_INT(gc_form_get_int(form, "a", true, 0, 100, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, 42);
    ASSERT_EQ_INT(gc_form_get_int(form, "b", true, 0, 100, &v, err, sizeof(err)), GC_EINVAL);
    ASSERT(strstr(err, "[0, 100]") != NULL);
    ASSERT_EQ_INT(gc_form_get_int(form, "b", true, -10, 100, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, -5);
    ASSERT_EQ_INT(gc_form_get_int(form, "c", true, 0, 100, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, 42);
    ASSERT_EQ_INT(gc_form_get_int(form, "d", true, 0, 100, &v, err, sizeof(err)), GC_EINVAL);
    v = 777;
    ASSERT_EQ_INT(gc_form_get_int(form, "e", false, 0, 100, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, 777);
    ASSERT_EQ_INT(gc_form_get_int(form, "e", true, 0, 100, &v, err, sizeof(err)), GC_EINVAL);
    ASSERT_EQ_INT(gc_form_get_int(form, "f", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, INT64_MAX);
    ASSERT_EQ_INT(gc_form_get_int(form, "g", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)),
                  GC_EINVAL);
    ASSERT_EQ_INT(gc_form_get_int(form, "h", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)), 0);
    ASSERT(v == INT64_MIN);
    ASSERT_EQ_INT(gc_form_get_int(form, "i", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)),
                  GC_EINVAL);
    ASSERT_EQ_INT(gc_form_get_int(form, "j", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)),
                  GC_EINVAL);
    v = 5;
    ASSERT_EQ_INT(gc_form_get_int(form, "zz", false, 0, 1, &v, err, sizeof(err)), 0);
    ASSERT_EQ_INT(v, 5);
    gc_form_free(form);
    gc_form_free(NULL);
}
