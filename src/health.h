/* health — GET /health: live probes of every deployment (admin). See health.c. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include "http/server.h"

void health_handler(worker *w, struct evhttp_request *req, const auth_ident *id);

#endif
