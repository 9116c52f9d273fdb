/* errmap.c: the one table from the error vocabulary to HTTP status codes. Dialects decide the
 * body's shape; the status comes from here. */
#include "base/base.h"
#include "http/server.h"

int ig_http_status_for(enum ig_err err)
{
    switch (err) {
    case IG_OK:
        return 200;
    case IG_E_INVALID:
    case IG_E_REFERENCE:
    case IG_E_BLOCKED:
        return 400;
    case IG_E_UNAUTHENTICATED:
        return 401;
    case IG_E_INSUFFICIENT:
        return 402;
    case IG_E_FORBIDDEN:
        return 403;
    case IG_E_NOT_FOUND:
        return 404;
    case IG_E_METHOD:
        return 405;
    case IG_E_CONFLICT:
        return 409;
    case IG_E_GONE:
        return 410;
    case IG_E_TOOBIG:
        return 413;
    case IG_E_MODERATED:
        return 422;
    case IG_E_RATE_LIMITED:
        return 429;
    case IG_E_UPSTREAM_SUBMIT:
    case IG_E_UPSTREAM_FAILED:
        return 502;
    case IG_E_AGAIN:
        return 503;
    case IG_E_UPSTREAM_TIMEOUT:
        return 504;
    default:
        return 500;
    }
}

const char *ig_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}
