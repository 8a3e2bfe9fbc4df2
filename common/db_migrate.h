/* db_migrate — applies sql/NNNN_*.sql in order, each once, each in its own
 * transaction, recorded in schema_migrations. Concurrent callers serialise on
 * an advisory lock. */
#ifndef PLACE_DB_MIGRATE_H
#define PLACE_DB_MIGRATE_H

#include <stddef.h>

#include "px.h"

/* url: owner connection (borrowed); dir: folder of migrations; app_role: the
 * role the migrations grant to (exposed to them as place.app_role).
 * *applied = number applied now. On error writes a message into err and
 * returns PX_EBACKEND (database) or -errno (files). */
PX_MUST_CHECK int db_migrate(const char *url, const char *dir, const char *app_role,
                             int *applied, char *err, size_t errlen);

#endif
