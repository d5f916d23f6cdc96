/* Compiling generated CUDA / HIP source for a named target without a GPU, and reading the
 * compiler's resource report (see offline_compile.h).
 *
 * CUDA: NVRTC with --ptxas-options=-v; ptxas prints, per entry point,
 *     ptxas info    : Compiling entry function 'mora_fwd' for 'sm_90'
 *     ptxas info    : Function properties for mora_fwd
 *     ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *     ptxas info    : Used 40 registers, used 1 barriers, 4096 bytes smem
 * and those lines are parsed into the report.
 * HIP: hiprtc; its log carries no resource usage, so it is read from the code object itself: the
 * ELF note "AMDGPU" / NT_AMDGPU_METADATA holds msgpack metadata with, per kernel, .vgpr_count,
 * .agpr_count, .sgpr_count, .vgpr_spill_count, .sgpr_spill_count, .group_segment_fixed_size (LDS)
 * and .private_segment_fixed_size (scratch). A summary line per kernel is appended to the log. */
#include "offline_compile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rtc.h"

void mora_compile_report_free(mora_compile_report *report) {
    if (!report) return;
    free(report->log);
    free(report->ptx);
    memset(report, 0, sizeof *report);
}

#if defined(MORA_HAVE_CUDA) || defined(MORA_HAVE_HIP)
/* The report entry of kernel `name` (added with every field "not reported" if new), or NULL when
 * the report is full or the name too long. */
static int entry_index(mora_compile_report *report, const char *name, size_t length, int add) {
    if (length == 0 || length >= sizeof report->entries[0].name) return -1;
    for (int i = 0; i < report->entry_count; ++i)
        if (strlen(report->entries[i].name) == length && strncmp(report->entries[i].name, name, length) == 0) return i;
    if (!add || report->entry_count == MORA_OFFLINE_MAX_ENTRIES) return -1;
    const int i = report->entry_count++;
    memcpy(report->entries[i].name, name, length);
    report->entries[i].name[length] = '\0';
    report->entries[i].registers = -1;
    report->entries[i].spill_store_bytes = -1;
    report->entries[i].spill_load_bytes = -1;
    report->entries[i].shared_bytes = -1;
    report->entries[i].stack_bytes = -1;
    return i;
}
#endif

/* ---- CUDA: ptxas -v ---------------------------------------------------------------------------- */
#ifdef MORA_HAVE_CUDA

/* The decimal number just before `marker` in [line, end) ("40" in "Used 40 registers" for
 * marker " registers"), or -1. */
static int number_before(const char *line, const char *end, const char *marker) {
    const size_t marker_length = strlen(marker);
    for (const char *p = line; p + marker_length <= end; ++p) {
        if (strncmp(p, marker, marker_length) != 0) continue;
        const char *q = p;
        while (q > line && q[-1] == ' ') --q;
        const char *digits_end = q;
        while (q > line && q[-1] >= '0' && q[-1] <= '9') --q;
        if (q == digits_end) return -1;
        long value = 0;
        for (const char *d = q; d < digits_end && value < 1000000000L; ++d) value = value * 10 + (*d - '0');
        return (int)value;
    }
    return -1;
}

static const char *find_in_line(const char *line, const char *end, const char *text) {
    const size_t length = strlen(text);
    for (const char *p = line; p + length <= end; ++p)
        if (strncmp(p, text, length) == 0) return p;
    return NULL;
}

/* Fills report->entries from ptxas's verbose lines in report->log. */
static void parse_ptxas(mora_compile_report *report) {
    static const char compiling[] = "Compiling entry function '";
    static const char properties[] = "Function properties for ";
    int current = -1;    /* entry being compiled: "Used N registers" belongs to it */
    int properties_of = -1; /* function whose properties the next stack/spill line gives */
    const char *line = report->log;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *at;
        if ((at = find_in_line(line, end, compiling)) != NULL) {
            const char *name = at + sizeof compiling - 1;
            const char *quote = memchr(name, '\'', (size_t)(end - name));
            current = quote ? entry_index(report, name, (size_t)(quote - name), 1) : -1;
            properties_of = current;
        } else if ((at = find_in_line(line, end, properties)) != NULL) {
            const char *name = at + sizeof properties - 1;
            const char *name_end = end;
            while (name_end > name && (name_end[-1] == ' ' || name_end[-1] == '\r')) --name_end;
            const int entry = entry_index(report, name, (size_t)(name_end - name), 0);
            /* A called (not inlined) device function: its frame and spills count for the kernel. */
            properties_of = entry >= 0 ? entry : current;
        } else if (find_in_line(line, end, "bytes stack frame") && properties_of >= 0) {
            const int stack = number_before(line, end, " bytes stack frame");
            const int stores = number_before(line, end, " bytes spill stores");
            const int loads = number_before(line, end, " bytes spill loads");
            __typeof__(report->entries[0]) *e = &report->entries[properties_of];
            if (stack >= 0) e->stack_bytes = e->stack_bytes > stack ? e->stack_bytes : stack;
            if (stores >= 0) e->spill_store_bytes = (e->spill_store_bytes > 0 ? e->spill_store_bytes : 0) + stores;
            if (loads >= 0) e->spill_load_bytes = (e->spill_load_bytes > 0 ? e->spill_load_bytes : 0) + loads;
        } else if (find_in_line(line, end, "Used ") && current >= 0) {
            const int registers = number_before(line, end, " registers");
            const int smem = number_before(line, end, " bytes smem");
            if (registers >= 0) report->entries[current].registers = registers;
            report->entries[current].shared_bytes = smem >= 0 ? smem : 0;
        }
        line = *end ? end + 1 : end;
    }
}

static mora_status compile_cuda(const char *arch, const char *source, mora_compile_report *report) {
    static const char *const verbose[] = {"--ptxas-options=-v"};
    mora_rtc_output out;
    MORA_TRY(mora_nvrtc_compile(source, arch, verbose, 1, &out));
    mora_nvrtc_describe(report->compiler, sizeof report->compiler, NULL, NULL, 0);
    report->binary_bytes = out.binary_bytes;
    report->log = out.log;
    report->ptx = out.ptx;
    out.log = out.ptx = NULL;
    mora_rtc_output_free(&out);
    parse_ptxas(report);
    report->matrix_instructions = -1;
    if (report->ptx) {
        report->matrix_instructions = 0;
        for (const char *at = report->ptx; (at = strstr(at, "mma.sync.")) != NULL; ++at) ++report->matrix_instructions;
    }
    return MORA_OK;
}
#endif /* MORA_HAVE_CUDA */

/* ---- HIP: AMDGPU code object metadata -------------------------------------------------------- */
#ifdef MORA_HAVE_HIP

static uint64_t read_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
    return v;
}

static uint64_t read_be(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
    return v;
}

/* A msgpack reader over a byte range: just enough to walk maps, arrays, strings and integers and to
 * skip everything else. Any malformed or truncated input sets `failed` and stops the walk. */
typedef struct mp_reader {
    const unsigned char *p, *end;
    int failed;
} mp_reader;

typedef enum mp_kind { MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_EXT, MP_ARRAY, MP_MAP } mp_kind;

typedef struct mp_item {
    mp_kind kind;
    int64_t value;        /* MP_INT, MP_BOOL */
    uint64_t length;      /* bytes of MP_STR / MP_BIN / MP_EXT, elements of MP_ARRAY, pairs of MP_MAP */
    const unsigned char *data; /* MP_STR / MP_BIN / MP_EXT payload */
} mp_item;

static const unsigned char *mp_take(mp_reader *r, uint64_t n) {
    if (r->failed || (uint64_t)(r->end - r->p) < n) {
        r->failed = 1;
        return NULL;
    }
    const unsigned char *at = r->p;
    r->p += n;
    return at;
}

/* Reads one item's header (and the payload of strings, bins and exts; array and map elements follow). */
static int mp_next(mp_reader *r, mp_item *it) {
    memset(it, 0, sizeof *it);
    const unsigned char *b = mp_take(r, 1);
    if (!b) return 0;
    const unsigned c = *b;
    int size_bytes = 0, value_bytes = 0, is_signed = 0;
    if (c <= 0x7f) {
        it->kind = MP_INT, it->value = (int64_t)c;
        return 1;
    }
    if (c >= 0xe0) {
        it->kind = MP_INT, it->value = (int64_t)c - 256;
        return 1;
    }
    if (c >= 0x80 && c <= 0x8f) {
        it->kind = MP_MAP, it->length = c & 0x0f;
        return 1;
    }
    if (c >= 0x90 && c <= 0x9f) {
        it->kind = MP_ARRAY, it->length = c & 0x0f;
        return 1;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        it->kind = MP_STR, it->length = c & 0x1f;
        return (it->data = mp_take(r, it->length)) != NULL || it->length == 0;
    }
    switch (c) {
    case 0xc0: it->kind = MP_NIL; return 1;
    case 0xc2: case 0xc3: it->kind = MP_BOOL, it->value = c == 0xc3; return 1;
    case 0xc4: case 0xc5: case 0xc6: it->kind = MP_BIN, size_bytes = 1 << (c - 0xc4); break;
    case 0xc7: case 0xc8: case 0xc9: it->kind = MP_EXT, size_bytes = 1 << (c - 0xc7); break;
    case 0xca: it->kind = MP_FLOAT; return mp_take(r, 4) != NULL;
    case 0xcb: it->kind = MP_FLOAT; return mp_take(r, 8) != NULL;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: it->kind = MP_INT, value_bytes = 1 << (c - 0xcc); break;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: it->kind = MP_INT, value_bytes = 1 << (c - 0xd0), is_signed = 1; break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        it->kind = MP_EXT, it->length = 1u << (c - 0xd4);
        return mp_take(r, 1) && (it->data = mp_take(r, it->length)) != NULL;
    case 0xd9: case 0xda: case 0xdb: it->kind = MP_STR, size_bytes = 1 << (c - 0xd9); break;
    case 0xdc: case 0xdd: it->kind = MP_ARRAY, size_bytes = 2 << (c - 0xdc); break;
    case 0xde: case 0xdf: it->kind = MP_MAP, size_bytes = 2 << (c - 0xde); break;
    default: r->failed = 1; return 0; /* 0xc1 is never used */
    }
    if (value_bytes) {
        const unsigned char *v = mp_take(r, (uint64_t)value_bytes);
        if (!v) return 0;
        const uint64_t raw = read_be(v, value_bytes);
        if (is_signed && value_bytes < 8 && (raw >> (8 * value_bytes - 1)) & 1)
            it->value = (int64_t)(raw | ~((UINT64_C(1) << (8 * value_bytes)) - 1));
        else
            it->value = (int64_t)raw;
        return 1;
    }
    const unsigned char *s = mp_take(r, (uint64_t)size_bytes);
    if (!s) return 0;
    it->length = read_be(s, size_bytes);
    if (it->kind == MP_ARRAY || it->kind == MP_MAP) return 1;
    if (it->kind == MP_EXT && !mp_take(r, 1)) return 0;
    it->data = mp_take(r, it->length);
    return it->data != NULL || it->length == 0;
}

/* Skips the rest of an item whose header was just read. */
static void mp_skip_rest(mp_reader *r, const mp_item *it, int depth) {
    if (depth > 32) {
        r->failed = 1;
        return;
    }
    uint64_t children = it->kind == MP_ARRAY ? it->length : it->kind == MP_MAP ? 2 * it->length : 0;
    for (uint64_t i = 0; i < children && !r->failed; ++i) {
        mp_item child;
        if (mp_next(r, &child)) mp_skip_rest(r, &child, depth + 1);
    }
}

static int mp_is(const mp_item *it, const char *text) {
    return it->kind == MP_STR && it->length == strlen(text) && memcmp(it->data, text, it->length) == 0;
}

/* Per-kernel numbers from the metadata. */
typedef struct amd_kernel {
    int vgprs, agprs, sgprs, vgpr_spills, sgpr_spills, lds, scratch;
} amd_kernel;

/* Reads one map of amdhsa.kernels into the report. */
static void read_kernel(mp_reader *r, uint64_t pairs, mora_compile_report *report, amd_kernel *kernels) {
    amd_kernel k = {-1, 0, -1, -1, -1, -1, -1};
    const unsigned char *name = NULL;
    size_t name_length = 0;
    for (uint64_t i = 0; i < pairs && !r->failed; ++i) {
        mp_item key, value;
        if (!mp_next(r, &key) || !mp_next(r, &value)) return;
        int *field = NULL;
        if (mp_is(&key, ".name") && value.kind == MP_STR) name = value.data, name_length = (size_t)value.length;
        else if (mp_is(&key, ".vgpr_count")) field = &k.vgprs;
        else if (mp_is(&key, ".agpr_count")) field = &k.agprs;
        else if (mp_is(&key, ".sgpr_count")) field = &k.sgprs;
        else if (mp_is(&key, ".vgpr_spill_count")) field = &k.vgpr_spills;
        else if (mp_is(&key, ".sgpr_spill_count")) field = &k.sgpr_spills;
        else if (mp_is(&key, ".group_segment_fixed_size")) field = &k.lds;
        else if (mp_is(&key, ".private_segment_fixed_size")) field = &k.scratch;
        if (field && value.kind == MP_INT && value.value >= 0 && value.value < INT32_MAX) *field = (int)value.value;
        mp_skip_rest(r, &value, 1);
    }
    const int e = name ? entry_index(report, (const char *)name, name_length, 1) : -1;
    if (e < 0) return;
    kernels[e] = k;
    __typeof__(report->entries[0]) *entry = &report->entries[e];
    /* On CDNA the accumulation registers (AGPRs) come out of the same per-lane file as the VGPRs. */
    entry->registers = k.vgprs >= 0 ? k.vgprs + k.agprs : -1;
    /* Bytes per work-item a spilled register costs: 4 for each VGPR or SGPR spilled. */
    const int spilled = k.vgpr_spills >= 0 && k.sgpr_spills >= 0 ? 4 * (k.vgpr_spills + k.sgpr_spills) : -1;
    entry->spill_store_bytes = spilled;
    entry->spill_load_bytes = spilled;
    entry->shared_bytes = k.lds;
    entry->stack_bytes = k.scratch;
}

static void read_metadata(const unsigned char *data, size_t size, mora_compile_report *report, amd_kernel *kernels) {
    mp_reader r = {data, data + size, 0};
    mp_item top;
    if (!mp_next(&r, &top) || top.kind != MP_MAP) return;
    for (uint64_t i = 0; i < top.length && !r.failed; ++i) {
        mp_item key, value;
        if (!mp_next(&r, &key) || !mp_next(&r, &value)) return;
        if (mp_is(&key, "amdhsa.kernels") && value.kind == MP_ARRAY) {
            for (uint64_t k = 0; k < value.length && !r.failed; ++k) {
                mp_item kernel;
                if (!mp_next(&r, &kernel)) return;
                if (kernel.kind == MP_MAP) read_kernel(&r, kernel.length, report, kernels);
                else mp_skip_rest(&r, &kernel, 1);
            }
        } else {
            mp_skip_rest(&r, &value, 1);
        }
    }
}

/* The msgpack metadata note of an AMDGPU ELF code object, or NULL. */
static const unsigned char *find_metadata(const unsigned char *elf, size_t size, size_t *note_size) {
    if (size < 64 || memcmp(elf, "\x7f" "ELF", 4) != 0 || elf[4] != 2 /* 64-bit */ || elf[5] != 1 /* LE */) return NULL;
    const uint64_t shoff = read_le(elf + 0x28, 8);
    const uint64_t shentsize = read_le(elf + 0x3a, 2), shnum = read_le(elf + 0x3c, 2);
    if (shentsize < 64 || shoff > size || shnum > (size - shoff) / shentsize) return NULL;
    for (uint64_t s = 0; s < shnum; ++s) {
        const unsigned char *sh = elf + shoff + s * shentsize;
        if (read_le(sh + 4, 4) != 7 /* SHT_NOTE */) continue;
        const uint64_t offset = read_le(sh + 0x18, 8), length = read_le(sh + 0x20, 8);
        if (offset > size || length > size - offset) continue;
        const unsigned char *note = elf + offset, *end = note + length;
        while (end - note >= 12) {
            const uint64_t namesz = read_le(note, 4), descsz = read_le(note + 4, 4), type = read_le(note + 8, 4);
            const uint64_t name_padded = (namesz + 3) & ~UINT64_C(3), desc_padded = (descsz + 3) & ~UINT64_C(3);
            if (name_padded > (uint64_t)(end - note - 12) || descsz > (uint64_t)(end - note - 12) - name_padded) break;
            const unsigned char *desc = note + 12 + name_padded;
            if (type == 32 /* NT_AMDGPU_METADATA */ && namesz == 7 && memcmp(note + 12, "AMDGPU", 7) == 0) {
                *note_size = (size_t)descsz;
                return desc;
            }
            if (desc_padded > (uint64_t)(end - desc)) break;
            note = desc + desc_padded;
        }
    }
    return NULL;
}

/* The AMDGPU ELF inside a code object: the object itself, or its entry of a clang offload bundle. */
static const unsigned char *find_elf(const unsigned char *code, size_t size, size_t *elf_size) {
    static const char bundle_magic[] = "__CLANG_OFFLOAD_BUNDLE__";
    const size_t magic_length = sizeof bundle_magic - 1;
    if (size >= 4 && memcmp(code, "\x7f" "ELF", 4) == 0) {
        *elf_size = size;
        return code;
    }
    if (size < magic_length + 8 || memcmp(code, bundle_magic, magic_length) != 0) return NULL;
    const uint64_t count = read_le(code + magic_length, 8);
    size_t at = magic_length + 8;
    for (uint64_t i = 0; i < count && at + 24 <= size; ++i) {
        const uint64_t offset = read_le(code + at, 8), length = read_le(code + at + 8, 8);
        const uint64_t triple_length = read_le(code + at + 16, 8);
        if (triple_length > size - at - 24) return NULL;
        const char *triple = (const char *)code + at + 24;
        int amdgcn = 0;
        for (uint64_t k = 0; k + 6 <= triple_length && !amdgcn; ++k) amdgcn = memcmp(triple + k, "amdgcn", 6) == 0;
        if (amdgcn && offset <= size && length <= size - offset && length >= 4 && memcmp(code + offset, "\x7f" "ELF", 4) == 0) {
            *elf_size = (size_t)length;
            return code + offset;
        }
        at += 24 + (size_t)triple_length;
    }
    return NULL;
}

/* MFMA instructions in the executable sections of an AMDGPU ELF (-1 if it has none). CDNA encodes
 * them as VOP3P-MAI: bits 31..23 of the first dword are 110100111 (0x1A7) and bits 22..16 the
 * opcode, the MFMA opcodes being 0x40..0x7F except v_accvgpr_read/write/mov (0x58..0x5A). The text
 * is scanned dword by dword rather than decoded, so an operand or literal dword of that shape would
 * count too: a hint for tests ("the matrix cores are used"), not an exact count. */
static int count_mfma(const unsigned char *elf, size_t size) {
    if (size < 64) return -1;
    const uint64_t shoff = read_le(elf + 0x28, 8);
    const uint64_t shentsize = read_le(elf + 0x3a, 2), shnum = read_le(elf + 0x3c, 2);
    if (shentsize < 64 || shoff > size || shnum > (size - shoff) / shentsize) return -1;
    int count = -1;
    for (uint64_t s = 0; s < shnum; ++s) {
        const unsigned char *sh = elf + shoff + s * shentsize;
        if (read_le(sh + 4, 4) != 1 /* SHT_PROGBITS */ || !(read_le(sh + 8, 8) & 0x4 /* SHF_EXECINSTR */)) continue;
        const uint64_t offset = read_le(sh + 0x18, 8), length = read_le(sh + 0x20, 8);
        if (offset > size || length > size - offset) continue;
        if (count < 0) count = 0;
        for (uint64_t at = 0; at + 4 <= length; at += 4) {
            const uint32_t word = (uint32_t)read_le(elf + offset + at, 4);
            const unsigned op = (word >> 16) & 0x7f;
            if ((word >> 23) == 0x1a7 && op >= 0x40 && (op < 0x58 || op > 0x5a)) ++count;
        }
    }
    return count;
}

/* Appends text to the report's malloc'd log. */
static void log_append(mora_compile_report *report, const char *text) {
    const size_t used = report->log ? strlen(report->log) : 0, extra = strlen(text);
    char *grown = realloc(report->log, used + extra + 1);
    if (!grown) return;
    memcpy(grown + used, text, extra + 1);
    report->log = grown;
}

static void read_code_object(const unsigned char *code, size_t size, mora_compile_report *report) {
    amd_kernel kernels[MORA_OFFLINE_MAX_ENTRIES];
    size_t elf_size = 0, note_size = 0;
    const unsigned char *elf = find_elf(code, size, &elf_size);
    const unsigned char *note = elf ? find_metadata(elf, elf_size, &note_size) : NULL;
    if (note) read_metadata(note, note_size, report, kernels);
    report->matrix_instructions = elf ? count_mfma(elf, elf_size) : -1;
    if (report->entry_count == 0) {
        log_append(report, "mora: no AMDGPU kernel metadata found in the code object: resource usage not reported "
                           "(registers = -1)\n");
        return;
    }
    for (int e = 0; e < report->entry_count; ++e) {
        const amd_kernel *k = &kernels[e];
        char line[256];
        snprintf(line, sizeof line,
                 "mora: %s: %d VGPRs, %d AGPRs, %d SGPRs, %d VGPRs spilled, %d SGPRs spilled, %d bytes LDS, "
                 "%d bytes scratch per work-item\n",
                 report->entries[e].name, k->vgprs, k->agprs, k->sgprs, k->vgpr_spills, k->sgpr_spills, k->lds,
                 k->scratch);
        log_append(report, line);
    }
}

static mora_status compile_hip(const char *arch, const char *source, mora_compile_report *report) {
    mora_rtc_output out;
    MORA_TRY(mora_hiprtc_compile(source, arch, NULL, 0, &out));
    mora_hiprtc_describe(report->compiler, sizeof report->compiler);
    report->binary_bytes = out.binary_bytes;
    report->log = out.log;
    out.log = NULL;
    read_code_object(out.binary, out.binary_bytes, report);
    mora_rtc_output_free(&out);
    return MORA_OK;
}
#endif /* MORA_HAVE_HIP */

mora_status mora_compile_offline(mora_dialect dialect, const char *arch, const char *source,
                                 mora_compile_report *report) {
    MORA_CHECK_PTR(report);
    memset(report, 0, sizeof *report);
    MORA_CHECK_PTR(arch);
    MORA_CHECK_PTR(source);
    if (strlen(arch) >= sizeof report->target)
        return mora_fail(MORA_E_ARG, "arch=\"%.40s...\": longer than %zu characters", arch, sizeof report->target - 1);
    snprintf(report->target, sizeof report->target, "%s", arch);
    mora_status st;
    switch (dialect) {
    case MORA_DIALECT_CUDA:
#ifdef MORA_HAVE_CUDA
        st = compile_cuda(arch, source, report);
#else
        st = mora_fail(MORA_E_NO_BACKEND,
                       "dialect cuda: libmora was built without the CUDA backend, so NVRTC is not used "
                       "(configure with -DMORA_WITH_CUDA=ON; needs cuda.h and nvrtc.h)");
#endif
        break;
    case MORA_DIALECT_HIP:
#ifdef MORA_HAVE_HIP
        st = compile_hip(arch, source, report);
#else
        st = mora_fail(MORA_E_NO_BACKEND,
                       "dialect hip: libmora was built without the HIP backend, so hiprtc is not used "
                       "(configure with -DMORA_WITH_HIP=ON; needs hip/hiprtc.h)");
#endif
        break;
    case MORA_DIALECT_OPENCL:
        st = mora_fail(MORA_E_UNSUPPORTED,
                       "dialect opencl: there is no offline OpenCL compiler; OpenCL source is built by the device's "
                       "driver (use an opencl context)");
        break;
    default:
        st = mora_fail(MORA_E_ARG, "dialect=%d: unknown; expected 1 (cuda) or 2 (hip)", (int)dialect);
        break;
    }
    if (st != MORA_OK) mora_compile_report_free(report);
    return st;
}
