/* core/grammar.h — constrained generation.
 *
 * Grammars are written in GBNF, llama.cpp's notation:
 *
 *   root   ::= "{" ws pair ("," ws pair)* "}"      # comments run to the end of the line
 *   pair   ::= [a-z]+ ws ":" ws ( "true" | "false" )
 *   ws     ::= [ \t\n]*
 *
 * rules `name ::= alternatives` (names [A-Za-z0-9_-]+; a rule continues on
 * the next lines inside parentheses or after `|`), literals "..." and
 * character classes [a-z0-9_] / [^"\\] with \n \r \t \\ \" \[ \] \- \xHH
 * \uHHHH \UHHHHHHHH escapes, `.` (any character), groups ( ), repetition
 * * + ? {m} {m,} {m,n}. The start rule is `root`. Left recursion is refused
 * (the matcher is top-down).
 *
 * A compiled grammar (sx_grammar, immutable, shareable between threads)
 * drives a matcher (sx_gmatch, one per generation) that follows the text
 * produced so far as a set of parse stacks over Unicode code points; a
 * token's bytes may end inside a UTF-8 character, the rest then has to
 * come with the next token. */
#ifndef SX_GRAMMAR_H
#define SX_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/specexit.h"

typedef struct sx_grammar sx_grammar;
typedef struct sx_gmatch sx_gmatch;

/* Parses and checks GBNF text. SX_ERR_INVALID_ARG with "grammar: line L
 * col C: ..." for a syntax error, an undefined rule, a missing root or left
 * recursion. Caller owns *out (sx_grammar_destroy). */
SX_MUST_USE sx_status sx_grammar_parse(const char *text, sx_grammar **out);
void sx_grammar_destroy(sx_grammar *g);

/* A matcher at the start of the grammar. Caller owns *out. */
SX_MUST_USE sx_status sx_gmatch_create(const sx_grammar *g, sx_gmatch **out);
void sx_gmatch_destroy(sx_gmatch *m);
/* A new matcher in src's state. */
SX_MUST_USE sx_status sx_gmatch_clone(const sx_gmatch *src, sx_gmatch **out);
/* dst takes src's state (both made from the same grammar). */
SX_MUST_USE sx_status sx_gmatch_copy(sx_gmatch *dst, const sx_gmatch *src);
/* Back to the start of the grammar. */
void sx_gmatch_reset(sx_gmatch *m);
/* Whether the grammar can take these bytes next (m is unchanged). */
bool sx_gmatch_allows(sx_gmatch *m, const char *bytes, size_t n);
/* Takes the bytes; false (m unchanged) when the grammar cannot. SX errors
 * (out of memory, nesting deeper than SX_GRAMMAR_MAX_DEPTH) also give false. */
bool sx_gmatch_accept(sx_gmatch *m, const char *bytes, size_t n);
/* The last allows/accept refused for lack of room, not because the grammar
 * forbids the bytes: the grammar is too ambiguous (more than
 * SX_GRAMMAR_MAX_STACKS parse stacks, deeper than SX_GRAMMAR_MAX_DEPTH, or
 * more than SX_GRAMMAR_MAX_WORK stack elements written in one call). */
bool sx_gmatch_failed(const sx_gmatch *m);
/* The text so far is a whole sentence of the grammar (it may also go on). */
bool sx_gmatch_can_end(const sx_gmatch *m);
/* The text so far is a whole sentence and nothing may follow. */
bool sx_gmatch_must_end(const sx_gmatch *m);

#define SX_GRAMMAR_MAX_DEPTH 1024 /* rule nesting of one parse stack */
#define SX_GRAMMAR_MAX_WORK ((size_t)1 << 18) /* stack elements written by one call (well under a millisecond) */
#define SX_GRAMMAR_MAX_STACKS 1024 /* parse stacks alive at once: a grammar more ambiguous than that refuses the text */


/* sx_json_schema_to_grammar (core/specexit.h), JSON Schema -> GBNF: type (string, number, integer, boolean, null,
 * object, array, or a list of them), properties (in their order), required,
 * additionalProperties (only false or absent with properties; a schema
 * without properties takes any keys), items, prefixItems, minItems,
 * maxItems, minLength, maxLength, enum, const, anyOf, oneOf, allOf of one
 * schema, $ref to #/$defs/... or #/definitions/... (recursive ones too).
 * Annotations (title, description, default, examples, $schema, $id, format)
 * are ignored; a keyword that would constrain the value in a way this
 * converter does not enforce (pattern, minimum, not, if, ...) is an error,
 * never silently dropped. *out_gbnf is malloc'ed (caller frees). */

#endif
