/*
 * flock(2) for skiff's cross-process locks (src/store/lock.ts): Node has no
 * flock API. This is the system call and nothing more; lock.ts only ever
 * asks for LOCK_EX|LOCK_NB (never a blocking lock, so the event loop never
 * waits on a held one) and LOCK_UN, and turns errors into Node's errno
 * names itself.
 *
 * Built by scripts/postbuild.mjs with gcc against Node-API, whose ABI is
 * stable: one build serves every Node version skiff supports.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <sys/file.h>
#include <node_api.h>

/* flock(fd, operation): 0, or -errno. */
static napi_value call_flock(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    int32_t fd, operation;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
        napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
        napi_get_value_int32(env, argv[1], &operation) != napi_ok) {
        napi_throw_type_error(env, NULL, "flock(fd, operation) takes two integers");
        return NULL;
    }
    int rc;
    do rc = flock(fd, operation);
    while (rc != 0 && errno == EINTR);
    napi_value result;
    napi_create_int32(env, rc == 0 ? 0 : -errno, &result);
    return result;
}

static int set_int(napi_env env, napi_value object, const char *name, int32_t value) {
    napi_value v;
    return napi_create_int32(env, value, &v) == napi_ok && napi_set_named_property(env, object, name, v) == napi_ok;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    if (napi_create_function(env, "flock", NAPI_AUTO_LENGTH, call_flock, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "flock", fn) != napi_ok ||
        !set_int(env, exports, "LOCK_EX", LOCK_EX) || !set_int(env, exports, "LOCK_NB", LOCK_NB) ||
        !set_int(env, exports, "LOCK_UN", LOCK_UN) || !set_int(env, exports, "EWOULDBLOCK", EWOULDBLOCK)) {
        return NULL;
    }
    return exports;
}
