/*
 * schema/reference.txt, embedded at build time: what vmsnap's migrations make, one schema object
 * a line, "VERSION<TAB>type name<TAB>sql" (the SQL's newlines, tabs and backslashes written "\n",
 * "\t" and "\\"), in the order SQLite sorts "type name". test_store builds the same from the
 * migrations and fails, writing the text it expects, when the file is not up to date.
 */
#ifndef VMSNAP_SCHEMA_REFERENCE_H
#define VMSNAP_SCHEMA_REFERENCE_H

#include <stddef.h>

extern const char store_schema_reference[];
extern const size_t store_schema_reference_len;

#endif
