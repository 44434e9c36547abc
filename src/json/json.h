/* A streaming JSON writer (after bpftool's json_writer): objects and arrays nest, commas and
 * escaping are handled here, output goes straight to a FILE. */
#ifndef VMSNAP_JSON_H
#define VMSNAP_JSON_H

#include <stdint.h>
#include <stdio.h>

struct json {
    FILE *out;
    int depth;
    int first[64]; /* whether the container at each depth has no member yet */
    int pending_key; /* a key was just written: its value follows without a comma */
    /* Strings write <, > and & as \u escapes, so the document can sit inside an HTML
     * <script> element whatever text it carries (a file named "</script>"). */
    int script_safe;
};

void json_init(struct json *j, FILE *out);
void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);
/* Writes a member name inside an object; the next value call writes its value. */
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_string_len(struct json *j, const char *s, size_t len);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, int v);
void json_null(struct json *j);
/* An address as a "0x..." lower-case hex string: JSON numbers lose precision above 2^53. */
void json_hex(struct json *j, uint64_t v);
/* Whether s is well-formed UTF-8; strings that are not are written with U+FFFD for each stray
 * byte, so the output is always valid JSON (and valid UTF-8). */
int json_utf8_valid(const char *s, size_t len);
/* The length of the well-formed UTF-8 sequence at p (avail bytes there, at least 1), or 0. */
size_t json_utf8_seq(const unsigned char *p, size_t avail);
/* Ends the document with a newline. */
void json_finish(struct json *j);

#endif
