// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_permissions.c - who may xpmem_get() a segment.
 *
 * Needs the module and root: it switches between test uids and gids in
 * forked children. tests/guest-suite runs it in the root pass only.
 *
 * The rule under test is the System V IPC one: the creator's mode, taken
 * from the owner, group or other bits by the caller's effective uid and
 * groups; CAP_IPC_OWNER in the creator's user namespace overrides.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xpmem.h"
#include "xtest.h"

#define UID_A 4001	/* the exporter */
#define UID_B 4002	/* another user */
#define GID_A 4101
#define GID_B 4102

struct identity {
	uid_t uid;
	gid_t gid;
	gid_t extra_group;	/* 0: none */
};

static const struct identity user_a = { UID_A, GID_A, 0 };
static const struct identity user_b = { UID_B, GID_B, 0 };
static const struct identity user_b_in_group_a = { UID_B, GID_B, GID_A };

static int become(const struct identity *id)
{
	gid_t groups[1] = { id->extra_group };

	if (setgroups(id->extra_group ? 1 : 0, groups) != 0 ||
	    setresgid(id->gid, id->gid, id->gid) != 0 ||
	    setresuid(id->uid, id->uid, id->uid) != 0)
		return -1;
	return 0;
}

/* An exporter running as @id, alive until exporter_stop(). */
struct exporter {
	pid_t pid;
	int release_fd;		/* closing it lets the exporter exit */
	xpmem_segid_t segid;
};

static void exporter_start(struct exporter *e, const struct identity *id, int mode)
{
	int to_parent[2], to_child[2];

	ck_assert_int_eq(pipe(to_parent), 0);
	ck_assert_int_eq(pipe(to_child), 0);
	e->pid = fork();
	ck_assert_int_ge(e->pid, 0);
	if (e->pid == 0) {
		xpmem_segid_t segid = -1;
		char c;

		close(to_parent[0]);
		close(to_child[1]);
		if (become(id) == 0)
			segid = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE,
					   (void *)(uintptr_t)mode);
		if (write(to_parent[1], &segid, sizeof(segid)) != sizeof(segid))
			_exit(1);
		/* Keep the segment until the parent closes the pipe. */
		while (read(to_child[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(to_parent[1]);
	close(to_child[0]);
	ck_assert_int_eq(read(to_parent[0], &e->segid, sizeof(e->segid)), sizeof(e->segid));
	close(to_parent[0]);
	ck_assert_msg(e->segid > 0, "exporter could not make its segment");
	e->release_fd = to_child[1];
}

static void exporter_stop(struct exporter *e)
{
	int status;

	close(e->release_fd);
	ck_assert_int_eq(waitpid(e->pid, &status, 0), e->pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * xpmem_get(@segid, @access) in a child running as @id (NULL: stay root).
 * Returns 0 on success or the errno.
 */
static int get_as(const struct identity *id, xpmem_segid_t segid, int access)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		xpmem_apid_t apid;

		if (id && become(id) != 0)
			_exit(100);
		apid = xpmem_get(segid, access, XPMEM_PERMIT_MODE, NULL);
		if (apid > 0)
			_exit(xpmem_release(apid) == 0 ? 0 : 101);
		_exit(errno < 100 ? errno : 102);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) < 100, "child failed: %d", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}

/* One row of the rule: mode, who asks, access asked, expected result. */
struct case_row {
	int mode;
	const struct identity *who;
	int access;
	int expect;
};

static const struct case_row rows[] = {
	/* 0600 is refused to another unprivileged uid, whatever the access. */
	{ 0600, &user_b, XPMEM_RDONLY, EACCES },
	{ 0600, &user_b, XPMEM_RDWR, EACCES },
	{ 0600, &user_a, XPMEM_RDWR, 0 },
	/* other bits */
	{ 0604, &user_b, XPMEM_RDONLY, 0 },
	{ 0604, &user_b, XPMEM_RDWR, EACCES },
	{ 0606, &user_b, XPMEM_RDWR, 0 },
	{ 0666, &user_b, XPMEM_RDWR, 0 },
	{ 0602, &user_b, XPMEM_RDONLY, EACCES },	/* write-only grants no get */
	/* group bits, by primary or supplementary group */
	{ 0660, &user_b_in_group_a, XPMEM_RDWR, 0 },
	{ 0640, &user_b_in_group_a, XPMEM_RDONLY, 0 },
	{ 0640, &user_b_in_group_a, XPMEM_RDWR, EACCES },
	{ 0660, &user_b, XPMEM_RDONLY, EACCES },
	/* the owner bits bind the owner too, as for IPC objects */
	{ 0400, &user_a, XPMEM_RDONLY, 0 },
	{ 0400, &user_a, XPMEM_RDWR, EACCES },
	{ 0066, &user_a, XPMEM_RDONLY, EACCES },
	{ 0000, &user_a, XPMEM_RDONLY, EACCES },
	/* root has CAP_IPC_OWNER in the creator's (initial) user namespace */
	{ 0600, NULL, XPMEM_RDWR, 0 },
	{ 0000, NULL, XPMEM_RDWR, 0 },
};

START_TEST(permission_rule)
{
	const struct case_row *row = &rows[_i];
	struct exporter e;
	int got;

	exporter_start(&e, &user_a, row->mode);
	got = get_as(row->who, e.segid, row->access);
	exporter_stop(&e);
	ck_assert_msg(got == row->expect, "mode %04o, uid %d, %s: got %s, expected %s",
		      row->mode, row->who ? (int)row->who->uid : 0,
		      row->access == XPMEM_RDWR ? "RDWR" : "RDONLY",
		      got ? strerror(got) : "success",
		      row->expect ? strerror(row->expect) : "success");
}
END_TEST

/*
 * Root of a new user namespace has CAP_IPC_OWNER there, but not in the
 * namespace that made the segment: it is refused like any other uid.
 */
START_TEST(capability_in_a_child_user_namespace_does_not_override)
{
	struct exporter e;
	int status;
	pid_t pid;

	exporter_start(&e, &user_a, 0600);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char map[64];
		xpmem_apid_t apid;

		if (become(&user_b) != 0)
			_exit(100);
		/* Changing uid made us non-dumpable: /proc/self would be root's. */
		if (prctl(PR_SET_DUMPABLE, 1) != 0)
			_exit(107);
		if (unshare(CLONE_NEWUSER) != 0)
			_exit(101);
		snprintf(map, sizeof(map), "0 %d 1\n", UID_B);
		if (xtest_write_file("/proc/self/uid_map", map) != 0)
			_exit(102);
		if (xtest_write_file("/proc/self/setgroups", "deny") != 0)
			_exit(103);
		snprintf(map, sizeof(map), "0 %d 1\n", GID_B);
		if (xtest_write_file("/proc/self/gid_map", map) != 0)
			_exit(104);
		if (geteuid() != 0)
			_exit(105);
		apid = xpmem_get(e.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
		_exit(apid == -1 && errno == EACCES ? 0 : 106);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	exporter_stop(&e);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %d", WEXITSTATUS(status));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("permissions");
	TCase *tc = xtest_tcase(s, "get");

	tcase_add_loop_test(tc, permission_rule, 0, sizeof(rows) / sizeof(rows[0]));
	tcase_add_test(tc, capability_in_a_child_user_namespace_does_not_override);

	return xtest_main("permissions", s, XTEST_NEEDS_DEVICE);
}
