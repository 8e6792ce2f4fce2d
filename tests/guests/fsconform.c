// File-system behaviour, step by step, in the empty directory argv[1]: one line per step
// with its result or its errno's name, so that two directories (a plain one, a sealed one)
// can be compared line by line. Prints nothing that legitimately differs between file
// systems (inode numbers, a directory's size or link count, times).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static char path_buffer[4][512];

// `dir/name` (four can be live at once).
static const char *at(const char *name) {
    static int next;
    char *p = path_buffer[next++ % 4];
    snprintf(p, sizeof path_buffer[0], "%s/%s", dir, name);
    return p;
}

static const char *errno_name(int e) {
    switch (e) {
    case EBADF: return "EBADF";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case EISDIR: return "EISDIR";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOTSUP: return "ENOTSUP";
    case EPERM: return "EPERM";
    case ESPIPE: return "ESPIPE";
    case EXDEV: return "EXDEV";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    default: return strerror(e);
    }
}

// Prints `label: ok` or `label: ERRNO` for a call returning 0 or -1.
static void step(const char *label, int result) {
    if (result < 0) {
        printf("%s: %s\n", label, errno_name(errno));
    } else {
        printf("%s: ok\n", label);
    }
}

// Prints `label: N` or `label: ERRNO` for a call returning a count or -1.
static void count(const char *label, long long result) {
    if (result < 0) {
        printf("%s: %s\n", label, errno_name(errno));
    } else {
        printf("%s: %lld\n", label, result);
    }
}

static void show_stat(const char *label, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("%s: %s\n", label, errno_name(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        printf("%s: directory\n", label);
    } else {
        printf("%s: file of %lld bytes, %lld link(s)\n", label, (long long)st.st_size,
               (long long)st.st_nlink);
    }
}

static void show_file(const char *label, const char *path) {
    char data[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: %s\n", label, errno_name(errno));
        return;
    }
    ssize_t n = read(fd, data, sizeof data - 1);
    if (n < 0) {
        printf("%s: %s\n", label, errno_name(errno));
    } else {
        data[n] = 0;
        printf("%s: \"%s\"\n", label, data);
    }
    close(fd);
}

static int compare(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The entries of `path`, sorted (the order of readdir is the file system's).
static void show_dir(const char *label, const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        printf("%s: %s\n", label, errno_name(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], compare);
    printf("%s:", label);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fsconform DIR\n");
        return 2;
    }
    dir = argv[1];
    char data[64];

    // Creating, writing, reading, seeking.
    int fd = open(at("a.txt"), O_CREAT | O_EXCL | O_RDWR, 0644);
    step("create a.txt", fd);
    step("create a.txt again, exclusive", open(at("a.txt"), O_CREAT | O_EXCL | O_RDWR, 0644));
    count("write", write(fd, "hello, sealed world", 19));
    count("seek to 7", lseek(fd, 7, SEEK_SET));
    count("read 6", read(fd, data, 6));
    data[6] = 0;
    printf("read gave \"%s\"\n", data);
    count("seek -3 from here", lseek(fd, -3, SEEK_CUR));
    count("seek -100 from here", lseek(fd, -100, SEEK_CUR));
    count("seek 10 past the end", lseek(fd, 10, SEEK_END));
    count("write past the end", write(fd, "!", 1));
    show_stat("stat a.txt after a hole", at("a.txt"));
    count("pread 5 at 0", pread(fd, data, 5, 0));
    count("pwrite 3 at 2", pwrite(fd, "LLO", 3, 2));
    count("position after pwrite", lseek(fd, 0, SEEK_CUR));
    count("read at the end", read(fd, data, sizeof data));
    step("ftruncate to 5", ftruncate(fd, 5));
    step("ftruncate to 8", ftruncate(fd, 8));
    count("pread after shrink and grow", pread(fd, data, sizeof data, 0));
    printf("bytes: %02x %02x %02x %02x %02x %02x %02x %02x\n", data[0], data[1], data[2], data[3],
           data[4], data[5], data[6], data[7]);
    step("fsync a.txt", fsync(fd));
    step("fdatasync a.txt", fdatasync(fd));
    printf("fcntl flags: %d\n", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    step("close a.txt", close(fd));

    // Opening modes.
    fd = open(at("a.txt"), O_RDONLY);
    count("write to a read-only descriptor", write(fd, "x", 1));
    step("ftruncate a read-only descriptor", ftruncate(fd, 0));
    printf("fcntl flags: %d\n", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    close(fd);
    fd = open(at("a.txt"), O_WRONLY);
    count("read from a write-only descriptor", read(fd, data, 1));
    printf("fcntl flags: %d\n", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    close(fd);
    fd = open(at("a.txt"), O_WRONLY | O_APPEND);
    count("append", write(fd, "+tail", 5));
    count("position after append", lseek(fd, 0, SEEK_CUR));
    count("pwrite at 0 while appending", pwrite(fd, "#", 1, 0));
    printf("fcntl flags: %d\n", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    step("clear O_APPEND", fcntl(fd, F_SETFL, 0));
    printf("fcntl flags: %d\n", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    close(fd);
    show_stat("stat a.txt", at("a.txt"));
    fd = open(at("a.txt"), O_WRONLY | O_TRUNC);
    step("open with O_TRUNC", fd);
    close(fd);
    show_stat("stat a.txt after O_TRUNC", at("a.txt"));
    step("open a missing file", open(at("missing"), O_RDONLY));
    step("open a file as a directory", open(at("a.txt"), O_RDONLY | O_DIRECTORY));
    step("open a file with a trailing slash", open(at("a.txt/"), O_RDONLY));
    step("open through a file", open(at("a.txt/x"), O_RDONLY));
    step("create with a trailing slash", open(at("new/"), O_CREAT | O_WRONLY, 0644));

    // Directories.
    step("mkdir d", mkdir(at("d"), 0755));
    step("mkdir d again", mkdir(at("d"), 0755));
    step("mkdir in a missing directory", mkdir(at("missing/d"), 0755));
    step("open d for writing", open(at("d"), O_WRONLY));
    int dfd = open(at("d"), O_RDONLY | O_DIRECTORY);
    step("open d", dfd);
    count("read a directory", read(dfd, data, 1));
    step("fsync a directory", fsync(dfd));
    count("seek a directory", lseek(dfd, 0, SEEK_SET));
    close(dfd);
    fd = open(at("d/inner.txt"), O_CREAT | O_WRONLY, 0644);
    count("write d/inner.txt", write(fd, "inner", 5));
    close(fd);
    show_stat("stat d", at("d"));
    show_stat("stat d/inner.txt", at("d/inner.txt"));
    show_stat("stat d/../a.txt", at("d/../a.txt"));
    show_stat("stat d/./inner.txt", at("d/./inner.txt"));
    show_stat("stat a missing file", at("nothing"));
    show_stat("stat a.txt/", at("a.txt/"));
    step("rmdir a non-empty directory", rmdir(at("d")));
    step("rmdir a file", rmdir(at("a.txt")));
    step("unlink a directory", unlink(at("d")));
    step("unlink a missing file", unlink(at("missing")));
    step("unlink a file with a trailing slash", unlink(at("a.txt/")));
    show_dir("list", dir);
    show_dir("list d", at("d"));
    show_dir("list a file", at("a.txt"));

    // Renames.
    step("rename a.txt to b.txt", rename(at("a.txt"), at("b.txt")));
    show_stat("stat a.txt after rename", at("a.txt"));
    show_stat("stat b.txt after rename", at("b.txt"));
    step("rename a missing file", rename(at("a.txt"), at("c.txt")));
    step("rename a file over a directory", rename(at("b.txt"), at("d")));
    step("mkdir e", mkdir(at("e"), 0755));
    step("rename a directory over a file", rename(at("e"), at("b.txt")));
    step("rename a directory into itself", rename(at("d"), at("d/sub")));
    step("rename a directory over a non-empty one", rename(at("e"), at("d")));
    step("rename d/inner.txt to e/moved.txt", rename(at("d/inner.txt"), at("e/moved.txt")));
    step("rename a directory over an empty one", rename(at("e"), at("d")));
    show_dir("list after renames", dir);
    show_dir("list d after renames", at("d"));
    show_file("d/moved.txt", at("d/moved.txt"));
    fd = open(at("c.txt"), O_CREAT | O_WRONLY, 0644);
    count("write c.txt", write(fd, "c", 1));
    close(fd);
    step("rename c.txt over b.txt", rename(at("c.txt"), at("b.txt")));
    show_file("b.txt", at("b.txt"));
    step("rename b.txt to itself", rename(at("b.txt"), at("b.txt")));

    // Paths that leave the directory, links, times.
    step("open above the directory", open(at("d/../../x"), O_RDONLY));
    count("readlink of a file", readlink(at("b.txt"), data, sizeof data));
    count("readlink of a missing file", readlink(at("missing"), data, sizeof data));
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 5}};
    step("set b.txt's mtime", utimensat(AT_FDCWD, at("b.txt"), times, 0));
    struct stat st;
    if (stat(at("b.txt"), &st) == 0) {
        printf("b.txt mtime: %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
    // An empty write changes nothing, not even the modification time.
    fd = open(at("b.txt"), O_WRONLY | O_APPEND);
    count("empty write", write(fd, "", 0));
    count("position after an empty append", lseek(fd, 0, SEEK_CUR));
    close(fd);
    if (stat(at("b.txt"), &st) == 0) {
        printf("b.txt mtime after it: %lld.%09ld\n", (long long)st.st_mtim.tv_sec,
               st.st_mtim.tv_nsec);
    }

    // Removing.
    step("unlink b.txt", unlink(at("b.txt")));
    step("unlink d/moved.txt", unlink(at("d/moved.txt")));
    step("rmdir d", rmdir(at("d")));
    step("rmdir d again", rmdir(at("d")));
    show_dir("list at the end", dir);

    // Last, as a sealed store has neither: links.
    fd = open(at("f.txt"), O_CREAT | O_WRONLY, 0644);
    close(fd);
    step("hard link", link(at("f.txt"), at("link.txt")));
    step("symbolic link", symlink("f.txt", at("sym.txt")));
    return 0;
}
