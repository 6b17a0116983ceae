/* http/reply — see reply.h. */
#include "http/reply.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "util/sbuf.h"

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static _Thread_local int t_status;

void http_last_status_reset(void)
{
    t_status = 0;
}

int http_last_status(void)
{
    return t_status;
}

void http_reply_json(struct evhttp_request *req, int status, const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    evbuffer_add(b, body, len);
    t_status = status;
    evhttp_send_reply(req, status, http_reason(status), NULL);
}

static const char *method_str(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

void http_reply_json_logged(struct evhttp_request *req, int status, const char *body, size_t len)
{
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t n = strcspn(uri, "?#");
    snprintf(path, sizeof path, "%.*s", (int)(n < sizeof path ? n : sizeof path - 1), uri);
    const char *method = method_str(evhttp_request_get_command(req));
    http_reply_json(req, status, body, len);
    log_access(&(log_access_rec){.method = method, .path = path, .status = status,
                                 .upstream_ms = -1});
}

char *http_error_body(const char *message, const char *type, const char *param, int code,
                      size_t *len)
{
    sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"error\":{\"message\":");
    sbuf_add_jstr(&b, message);
    sbuf_adds(&b, ",\"type\":");
    sbuf_add_jstr(&b, type);
    sbuf_adds(&b, ",\"param\":");
    sbuf_add_jstr(&b, param);
    sbuf_addf(&b, ",\"code\":\"%d\"}}", code);
    return sbuf_take(&b, len);
}

void http_reply_error(struct evhttp_request *req, int status, const char *type,
                      const char *param, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *body = http_error_body(msg, type, param, status, &len);
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    http_reply_json(req, status, body, len);
    free(body);
}
