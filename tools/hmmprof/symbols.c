// SPDX-License-Identifier: MIT
/*
 * symbols.c - names of code addresses that libhmm's markers give as
 * "object file + offset" (a static function, such as most kernels, has no
 * dynamic symbol that dladdr() could name): the function is looked up in
 * the file's own symbol table (.symtab, else .dynsym) of ELF64.  Each file
 * is read once.  Names and other strings of the profile are interned:
 * each distinct string is stored once and lives as long as the profile.
 */
#define _GNU_SOURCE
#include "hmmprof.h"

#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct hp_sym {
	uint64_t value, size;
	size_t name;      /* offset in the symtab's @strs */
};

struct hp_symtab {
	char *path;
	uint64_t base;    /* vaddr of the lowest PT_LOAD, page-aligned */
	struct hp_sym *sym;
	size_t n, cap;
	char *strs;       /* a copy of the string table the names are in */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* The slot of @s in the table @t of @cap (a power of two) entries. */
static size_t str_slot(char **t, size_t cap, const char *s)
{
	size_t i = (size_t)str_hash(s) & (cap - 1);

	while (t[i] && strcmp(t[i], s))
		i = (i + 1) & (cap - 1);
	return i;
}

/*
 * @p->strs is an open-addressing hash table of @p->strcap entries (a
 * power of two, at most half full) holding @p->nstrs strings.
 */
const char *hp_intern(struct hp_profile *p, const char *s)
{
	size_t i;
	char *copy;

	if (!s)
		return NULL;
	if (p->strcap && p->strs[i = str_slot(p->strs, p->strcap, s)])
		return p->strs[i];
	if (2 * (p->nstrs + 1) > p->strcap) {
		size_t cap = p->strcap ? 2 * p->strcap : 256;
		char **t = calloc(cap, sizeof(*t));

		if (!t)
			return NULL;
		for (size_t k = 0; k < p->strcap; k++)
			if (p->strs[k])
				t[str_slot(t, cap, p->strs[k])] = p->strs[k];
		free(p->strs);
		p->strs = t;
		p->strcap = cap;
	}
	copy = strdup(s);
	if (!copy)
		return NULL;
	p->strs[str_slot(p->strs, p->strcap, s)] = copy;
	p->nstrs++;
	return copy;
}

static int cmp_sym(const void *a, const void *b)
{
	const struct hp_sym *x = a, *y = b;

	return (x->value > y->value) - (x->value < y->value);
}

/* Reads the function symbols of the ELF64 file @fd (@len bytes). */
static void read_symbols(struct hp_symtab *st, const uint8_t *f, size_t len)
{
	const Elf64_Ehdr *eh = (const void *)f;
	const Elf64_Shdr *sh;
	const Elf64_Phdr *ph;
	bool have_base = false;
	int pass;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64)
		return;
	if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(*ph) <= len) {
		ph = (const void *)(f + eh->e_phoff);
		for (int i = 0; i < eh->e_phnum; i++) {
			uint64_t v = ph[i].p_vaddr & ~(uint64_t)4095;

			if (ph[i].p_type == PT_LOAD && (!have_base || v < st->base)) {
				st->base = v;
				have_base = true;
			}
		}
	}
	if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(*sh) > len)
		return;
	sh = (const void *)(f + eh->e_shoff);
	/* .symtab when the file has one, else .dynsym */
	for (pass = 0; pass < 2 && !st->n; pass++) {
		uint32_t want = pass ? SHT_DYNSYM : SHT_SYMTAB;

		for (int i = 0; i < eh->e_shnum; i++) {
			const Elf64_Shdr *s = &sh[i], *strs;
			const Elf64_Sym *sym;
			size_t count;

			if (s->sh_type != want || s->sh_link >= eh->e_shnum ||
			    s->sh_offset + s->sh_size > len)
				continue;
			strs = &sh[s->sh_link];
			if (strs->sh_offset + strs->sh_size > len ||
			    !strs->sh_size || st->strs)
				continue;
			st->strs = malloc(strs->sh_size + 1);
			if (!st->strs)
				return;
			memcpy(st->strs, f + strs->sh_offset, strs->sh_size);
			st->strs[strs->sh_size] = '\0';
			sym = (const void *)(f + s->sh_offset);
			count = s->sh_size / sizeof(*sym);
			for (size_t k = 0; k < count; k++) {
				if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC ||
				    !sym[k].st_value ||
				    sym[k].st_name >= strs->sh_size)
					continue;
				if (hp_grow(&st->sym, &st->cap, st->n,
					    sizeof(*st->sym)) < 0)
					break;
				st->sym[st->n].value = sym[k].st_value;
				st->sym[st->n].size = sym[k].st_size;
				st->sym[st->n].name = sym[k].st_name;
				st->n++;
			}
		}
	}
	qsort(st->sym, st->n, sizeof(*st->sym), cmp_sym);
}

static struct hp_symtab *symtab_of(struct hp_profile *p, const char *path,
				   pid_t pid)
{
	struct hp_symtab *st;
	struct stat sb;
	char exe[64];
	void *map;
	int fd;

	for (size_t i = 0; i < p->nsymtabs; i++)
		if (!strcmp(p->symtabs[i].path, path))
			return &p->symtabs[i];
	if (hp_grow(&p->symtabs, &p->symtabcap, p->nsymtabs,
		    sizeof(*p->symtabs)))
		return NULL;
	st = &p->symtabs[p->nsymtabs];
	memset(st, 0, sizeof(*st));
	st->path = strdup(path);
	if (!st->path)
		return NULL;
	p->nsymtabs++;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && pid > 0) {
		/* the main program's name is argv[0]: relative to its cwd */
		snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
		fd = open(exe, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return st;
	if (!fstat(fd, &sb) && sb.st_size > 0) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE,
			   fd, 0);
		if (map != MAP_FAILED) {
			read_symbols(st, map, (size_t)sb.st_size);
			munmap(map, (size_t)sb.st_size);
		}
	}
	close(fd);
	return st;
}

void hp_symtabs_free(struct hp_profile *p)
{
	for (size_t i = 0; i < p->nsymtabs; i++) {
		free(p->symtabs[i].path);
		free(p->symtabs[i].sym);
		free(p->symtabs[i].strs);
	}
	free(p->symtabs);
	p->symtabs = NULL;
	p->nsymtabs = p->symtabcap = 0;
}

const char *hp_code_name(struct hp_profile *p, const struct hp_code *c,
			 pid_t pid, bool offset)
{
	char buf[640];

	if (c->sym[0])
		return hp_intern(p, c->sym);
	if (c->obj[0]) {
		struct hp_symtab *st = symtab_of(p, c->obj, pid);
		uint64_t v = c->off + (st ? st->base : 0);
		size_t lo = 0, hi = st ? st->n : 0;

		/* the last symbol at or below @v */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (st->sym[mid].value <= v)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo && (!st->sym[lo - 1].size ||
			   v < st->sym[lo - 1].value + st->sym[lo - 1].size)) {
			const struct hp_sym *s = &st->sym[lo - 1];

			const char *name = st->strs + s->name;

			if (offset && v != s->value)
				snprintf(buf, sizeof(buf), "%s+0x%llx", name,
					 (unsigned long long)(v - s->value));
			else
				snprintf(buf, sizeof(buf), "%s", name);
			return hp_intern(p, buf);
		}
		snprintf(buf, sizeof(buf), "%s+0x%llx",
			 strrchr(c->obj, '/') ? strrchr(c->obj, '/') + 1 : c->obj,
			 (unsigned long long)c->off);
		return hp_intern(p, buf);
	}
	if (!c->addr)
		return NULL;
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)c->addr);
	return hp_intern(p, buf);
}
