/* The schema migrations embedded from schema/ at build time. */
#ifndef VMSNAP_MIGRATIONS_H
#define VMSNAP_MIGRATIONS_H

struct store_migration {
    int version; /* user_version after applying it */
    const char *name;
    const char *sql;
};

extern const struct store_migration store_migrations[];
extern const int store_migrations_count;

#endif
