// The TypeScript declarations against the server's OpenAPI document
// (docs/openapi.json, which a Rust test keeps equal to what the server
// serves): every wire name the .d.ts spells, and every field of the wire
// objects, must be the server's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const dts = readFileSync(new URL('../playmark.d.ts', import.meta.url), 'utf8');
const openapi = JSON.parse(readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'));
const schemas = openapi.components.schemas;

/** The string literals of `export type Name = 'a' | 'b';` in the .d.ts. */
function literalUnion(name) {
  const match = dts.match(new RegExp(`export type ${name} =([^;]+);`));
  assert.ok(match, `the .d.ts declares no type ${name}`);
  return [...match[1].matchAll(/'([^']*)'/g)].map((m) => m[1]).sort();
}

/** `{field: optional?}` of `export interface Name ... { ... }` (own fields and those of the interfaces it extends). */
function interfaceFields(name) {
  const match = dts.match(new RegExp(`export interface ${name}(?: extends ([\\w, ]+))? \\{([^}]*)\\}`));
  assert.ok(match, `the .d.ts declares no interface ${name}`);
  const fields = {};
  for (const parent of (match[1] ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    Object.assign(fields, interfaceFields(parent));
  }
  for (const m of match[2].matchAll(/^\s*(\w+)(\??):/gm)) fields[m[1]] = m[2] === '?';
  return fields;
}

/** `{property: optional?}` of an OpenAPI object schema. */
function schemaFields(name) {
  const schema = schemas[name];
  assert.ok(schema, `the OpenAPI document has no schema ${name}`);
  const required = new Set(schema.required ?? []);
  return Object.fromEntries(Object.keys(schema.properties).map((p) => [p, !required.has(p)]));
}

const enums = {
  UpdateOutcome: 'UpdateOutcome',
  ErrorCode: 'ErrorCode',
  ResumeAction: 'ResumeAction',
  ResumeReason: 'ResumeReason',
  CheckpointEvent: 'PlayerEvent',
};

for (const [ts, schema] of Object.entries(enums)) {
  test(`the .d.ts type ${ts} lists exactly the server's ${schema} names`, () => {
    assert.deepEqual(literalUnion(ts), [...schemas[schema].enum].sort());
  });
}

// Answers: the same fields, optional exactly where the server may leave them out.
const answers = { PlaybackRecord: 'Record', UpdateResult: 'UpdateResponse', ResumeAnswer: 'ResumeResponse' };
for (const [ts, schema] of Object.entries(answers)) {
  test(`the .d.ts interface ${ts} has the fields of the server's ${schema}`, () => {
    assert.deepEqual(interfaceFields(ts), schemaFields(schema));
  });
}

// Requests: the SDK sends only fields the server knows (it would answer with
// a Warning header otherwise).
test('every field of the .d.ts Checkpoint is a field of the server\'s UpdateRequest', () => {
  const known = schemaFields('UpdateRequest');
  for (const field of Object.keys(interfaceFields('Checkpoint'))) {
    assert.ok(field in known, `Checkpoint.${field} is not a field the server knows`);
  }
});

test('the .d.ts Mark has exactly the fields of the server\'s WatchedRequest', () => {
  assert.deepEqual(interfaceFields('Mark'), schemaFields('WatchedRequest'));
});
