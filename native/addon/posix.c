/*
 * nyd_posix: the few POSIX calls Node.js lacks, for nyd's converter and
 * snapshotter (device nodes and extended attributes of files as they are,
 * without following symlinks) and the engine's kernel-native EROFS mounts.
 *
 * Every function is synchronous and makes one system call; reads go into a
 * buffer of the kernel's maximum size (XATTR_SIZE_MAX / XATTR_LIST_MAX,
 * 64 KiB each), so no size probe and no unbounded allocation. Failures throw
 * a JS Error whose `code` is the errno name as Node spells it ("ENOENT",
 * "EPERM", "ENOTSUP" ...), with `errno` (negative), `syscall` and `path`,
 * shaped like Node's own fs errors. Bad arguments throw TypeError/RangeError.
 *
 * Exports:
 *   mknod(path: string, mode: number, major: number, minor: number): void
 *   lsetxattr(path: string, name: string, value: Buffer): void
 *   lgetxattr(path: string, name: string): Buffer
 *   llistxattr(path: string): string[]
 *   lremovexattr(path: string, name: string): void
 *   mountErofs(image: string, target: string, devices: string[], attrs: number): void
 *   umount2(target: string, flags: number): void
 *
 * mountErofs uses the mount API (fsopen, fsconfig, fsmount, move_mount) rather
 * than mount(2): each `device` is its own fsconfig call, so neither the count
 * of devices nor commas in paths run into mount(2)'s one-page, comma-split
 * option string, and when the kernel refuses the file system its own message
 * (read from the fs context) ends up in the error. The image and the devices
 * are regular files (EROFS file-backed mode, Linux 6.12+); no loop device.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <node_api.h>

#define NYD_XATTR_SIZE_MAX 65536
#define NYD_XATTR_LIST_MAX 65536
#define NYD_PATH_MAX 4096
#define NYD_NAME_MAX 255
/* EROFS counts extra devices in a u16. */
#define NYD_EROFS_MAX_DEVICES 65535
/* Room for the kernel's messages about a refused file system. */
#define NYD_FS_LOG_MAX 1024

/* Throws a pending exception unless one is already pending; returns NULL. */
static napi_value throw_type(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *val) {
  napi_value v;
  if (napi_create_string_utf8(env, val, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, obj, key, v);
}

/*
 * Throws an Error like Node's fs errors: "ENOENT: <text>, lgetxattr '<path>'",
 * followed by " (<detail>)" when detail is not empty.
 */
static napi_value throw_errno_detail(napi_env env, int err, const char *syscall, const char *path, const char *detail) {
  /* Node (libuv) calls errno 95 ENOTSUP; glibc names it EOPNOTSUPP. Match Node. */
  const char *name = err == ENOTSUP ? "ENOTSUP" : strerrorname_np(err);
  char code[32];
  if (name == NULL) {
    snprintf(code, sizeof code, "E%d", err);
    name = code;
  }
  char msg[NYD_PATH_MAX + NYD_FS_LOG_MAX + 256];
  if (detail != NULL && detail[0] != '\0')
    snprintf(msg, sizeof msg, "%s: %s, %s '%s' (%s)", name, strerror(err), syscall, path, detail);
  else
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name, strerror(err), syscall, path);
  napi_value js_msg, js_code, error, js_errno;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &js_code) != napi_ok) return NULL;
  if (napi_create_error(env, js_code, js_msg, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &js_errno) == napi_ok) napi_set_named_property(env, error, "errno", js_errno);
  set_str(env, error, "syscall", syscall);
  set_str(env, error, "path", path);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  return throw_errno_detail(env, err, syscall, path, NULL);
}

/*
 * Copies a JS string argument into `out` (capacity `cap` including the NUL).
 * Rejects non-strings, strings too long, and strings with embedded NULs, which
 * C would silently cut short.
 */
static bool get_cstr(napi_env env, napi_value v, char *out, size_t cap, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a string", what);
    throw_type(env, msg);
    return false;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return false;
  if (len == 0 || len >= cap) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be 1..%zu bytes long", what, cap - 1);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, out, cap, &copied) != napi_ok) return false;
  if (strlen(out) != copied) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must not contain NUL bytes", what);
    throw_type(env, msg);
    return false;
  }
  return true;
}

static bool get_u32(napi_env env, napi_value v, uint32_t *out, const char *what) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer in 0..2^32-1", what);
    throw_type(env, msg);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    throw_type(env, "missing arguments");
    return false;
  }
  return true;
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[NYD_PATH_MAX];
  uint32_t mode, major, minor;
  if (!get_args(env, info, 4, argv)) return NULL;
  if (!get_cstr(env, argv[0], path, sizeof path, "path")) return NULL;
  if (!get_u32(env, argv[1], &mode, "mode")) return NULL;
  if (!get_u32(env, argv[2], &major, "major")) return NULL;
  if (!get_u32(env, argv[3], &minor, "minor")) return NULL;
  if (mknod(path, (mode_t)mode, makedev(major, minor)) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[NYD_PATH_MAX], name[NYD_NAME_MAX + 1];
  if (!get_args(env, info, 3, argv)) return NULL;
  if (!get_cstr(env, argv[0], path, sizeof path, "path")) return NULL;
  if (!get_cstr(env, argv[1], name, sizeof name, "name")) return NULL;
  bool is_typed = false;
  if (napi_is_typedarray(env, argv[2], &is_typed) != napi_ok || !is_typed)
    return throw_type(env, "value must be a Buffer or Uint8Array");
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != napi_uint8_array) return throw_type(env, "value must be a Buffer or Uint8Array");
  if (length > NYD_XATTR_SIZE_MAX) return throw_errno(env, E2BIG, "lsetxattr", path);
  if (lsetxattr(path, name, length == 0 ? "" : data, length, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  char path[NYD_PATH_MAX], name[NYD_NAME_MAX + 1];
  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_cstr(env, argv[0], path, sizeof path, "path")) return NULL;
  if (!get_cstr(env, argv[1], name, sizeof name, "name")) return NULL;
  char *buf = malloc(NYD_XATTR_SIZE_MAX);
  if (buf == NULL) return throw_errno(env, ENOMEM, "lgetxattr", path);
  ssize_t n = lgetxattr(path, name, buf, NYD_XATTR_SIZE_MAX);
  if (n < 0) {
    int err = errno;
    free(buf);
    return throw_errno(env, err, "lgetxattr", path);
  }
  napi_status st = napi_create_buffer_copy(env, (size_t)n, buf, NULL, &result);
  free(buf);
  return st == napi_ok ? result : NULL;
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  char path[NYD_PATH_MAX];
  if (!get_args(env, info, 1, argv)) return NULL;
  if (!get_cstr(env, argv[0], path, sizeof path, "path")) return NULL;
  char *buf = malloc(NYD_XATTR_LIST_MAX);
  if (buf == NULL) return throw_errno(env, ENOMEM, "llistxattr", path);
  ssize_t n = llistxattr(path, buf, NYD_XATTR_LIST_MAX);
  if (n < 0) {
    int err = errno;
    free(buf);
    return throw_errno(env, err, "llistxattr", path);
  }
  if (napi_create_array(env, &result) != napi_ok) {
    free(buf);
    return NULL;
  }
  /* The list is a sequence of NUL-terminated names. */
  uint32_t index = 0;
  for (ssize_t off = 0; off < n;) {
    size_t len = strnlen(buf + off, (size_t)(n - off));
    if (len > 0) {
      napi_value s;
      if (napi_create_string_utf8(env, buf + off, len, &s) != napi_ok ||
          napi_set_element(env, result, index++, s) != napi_ok) {
        free(buf);
        return NULL;
      }
    }
    off += (ssize_t)len + 1;
  }
  free(buf);
  return result;
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[NYD_PATH_MAX], name[NYD_NAME_MAX + 1];
  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_cstr(env, argv[0], path, sizeof path, "path")) return NULL;
  if (!get_cstr(env, argv[1], name, sizeof name, "name")) return NULL;
  if (lremovexattr(path, name) != 0) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

/*
 * Reads the messages the kernel left in a file system context ("e erofs: ..."
 * lines) into `out`, joined by "; ". Never blocks: the fd has them queued.
 */
static void read_fs_log(int fsfd, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  char line[512];
  for (;;) {
    ssize_t n = read(fsfd, line, sizeof line - 1);
    if (n <= 0) break;
    line[n] = '\0';
    int w = snprintf(out + used, cap - used, "%s%s", used > 0 ? "; " : "", line);
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
  }
}

static napi_value js_mount_erofs(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char image[NYD_PATH_MAX], target[NYD_PATH_MAX], device[NYD_PATH_MAX];
  uint32_t attrs, count = 0;
  bool is_array = false;
  if (!get_args(env, info, 4, argv)) return NULL;
  if (!get_cstr(env, argv[0], image, sizeof image, "image")) return NULL;
  if (!get_cstr(env, argv[1], target, sizeof target, "target")) return NULL;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) return throw_type(env, "devices must be an array");
  if (napi_get_array_length(env, argv[2], &count) != napi_ok) return NULL;
  if (count > NYD_EROFS_MAX_DEVICES) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "at most 65535 devices");
    return NULL;
  }
  if (!get_u32(env, argv[3], &attrs, "attrs")) return NULL;

  int fsfd = fsopen("erofs", FSOPEN_CLOEXEC);
  if (fsfd < 0) return throw_errno(env, errno, "fsopen", image);
  const char *syscall = "fsconfig";
  const char *what = image;
  int err = 0;
  if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", image, 0) != 0) err = errno;
  for (uint32_t i = 0; err == 0 && i < count; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || !get_cstr(env, v, device, sizeof device, "device")) {
      close(fsfd);
      return NULL;
    }
    if (fsconfig(fsfd, FSCONFIG_SET_STRING, "device", device, 0) != 0) {
      err = errno;
      what = device;
    }
  }
  if (err == 0 && fsconfig(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) err = errno;
  if (err == 0 && fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) err = errno;
  int mfd = -1;
  if (err == 0) {
    mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, attrs | MOUNT_ATTR_RDONLY);
    if (mfd < 0) {
      err = errno;
      syscall = "fsmount";
    }
  }
  if (err == 0 && move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    err = errno;
    syscall = "move_mount";
    what = target;
  }
  char log[NYD_FS_LOG_MAX];
  log[0] = '\0';
  if (err != 0) read_fs_log(fsfd, log, sizeof log);
  if (mfd >= 0) close(mfd);
  close(fsfd);
  if (err != 0) return throw_errno_detail(env, err, syscall, what, log);
  return NULL;
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char target[NYD_PATH_MAX];
  uint32_t flags;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (!get_cstr(env, argv[0], target, sizeof target, "target")) return NULL;
  if (!get_u32(env, argv[1], &flags, "flags")) return NULL;
  if (umount2(target, (int)flags) != 0) return throw_errno(env, errno, "umount2", target);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mountErofs", NULL, js_mount_erofs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
