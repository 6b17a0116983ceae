/* routes — the wiring: which handler serves which path. The LLM routes go to gateway.c; the
 * informational routes (models, model info, health probes) live here because they only read
 * the config. Bodies that depend on nothing but the config are rendered once at start. */
#ifndef SLUICE_ROUTES_H
#define SLUICE_ROUTES_H

#include "http/server.h"

#include "store/store.h"

/* Renders the config-derived bodies and assembles the route table (LLM, info, management);
 * call before serving. st answers /health/readiness. 0 or -1. */
int routes_init(const cfg *c, store *st);
void routes_free(void);
const http_route *routes_table(int *n);

#endif
