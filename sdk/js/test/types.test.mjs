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
const answers = {
  PlaybackRecord: 'Record',
  UpdateResult: 'UpdateResponse',
  ResumeAnswer: 'ResumeResponse',
  NextUp: 'NextUp',
  HistoryPage: 'HistoryResponse',
  ContinueWatchingRow: 'ContinueWatchingResponse',
};
for (const [ts, schema] of Object.entries(answers)) {
  test(`the .d.ts interface ${ts} has the fields of the server's ${schema}`, () => {
    assert.deepEqual(interfaceFields(ts), schemaFields(schema));
  });
}

/** The interfaces a .d.ts type names, as schema names: `A | B`, with `export type X = A | B;` aliases expanded. */
function tsTypes(type) {
  return type.split('|').flatMap((t) => {
    const name = t.trim();
    const alias = dts.match(new RegExp(`export type ${name} = ([^;]+);`));
    return alias ? tsTypes(alias[1]) : [answers[name] ?? name];
  });
}

/** The .d.ts types an array field of `export interface Name` holds (`T[]` or `Array<A | B>`), as schema names. */
function arrayItemTypes(name, field) {
  const match = dts.match(new RegExp(`export interface ${name} \\{([^}]*)\\}`));
  assert.ok(match, `the .d.ts declares no interface ${name}`);
  const type = match[1].match(new RegExp(`^\\s*${field}\\??: (?:Array<([^>]+)>|(\\w+)\\[\\]);`, 'm'));
  assert.ok(type, `${name}.${field} is not an array type`);
  return tsTypes(type[1] ?? type[2]).sort();
}

/** The object schemas a schema stands for: itself, or each of its `oneOf`/`anyOf` (through `$ref`s and one-`allOf` wrappers). */
function schemaTypes(schema) {
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) return variants.flatMap(schemaTypes);
  if (schema.allOf?.length === 1) return schemaTypes(schema.allOf[0]);
  if (schema.$ref) {
    const name = schema.$ref.split('/').pop();
    const target = schemas[name];
    return target.oneOf || target.anyOf ? schemaTypes(target) : [name];
  }
  assert.fail(`not a reference to an object schema: ${JSON.stringify(schema)}`);
}

/** The schemas an array property of an OpenAPI object schema holds. */
function schemaItemTypes(name, property) {
  return schemaTypes(schemas[name].properties[property].items).sort();
}

// Lists: the items are the same objects (a grouped row mixes records and next-ups).
const lists = [
  ['ContinueWatchingRow', 'items', 'ContinueWatchingResponse'],
  ['HistoryPage', 'items', 'HistoryResponse'],
];
for (const [ts, field, schema] of lists) {
  test(`the .d.ts ${ts}.${field} holds the items of the server's ${schema}.${field}`, () => {
    assert.deepEqual(arrayItemTypes(ts, field), schemaItemTypes(schema, field));
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

test('the .d.ts Checkpoint names a title\'s series as the server\'s UpdateRequest does', () => {
  const known = schemaFields('UpdateRequest');
  const fields = interfaceFields('Checkpoint');
  for (const field of ['series_id', 'episode']) {
    assert.equal(fields[field], true, `Checkpoint.${field} is declared, optional`);
    assert.equal(known[field], true, `UpdateRequest.${field} is optional on the server`);
  }
});

// The query parameters the client sends.
function queryParameters(path) {
  assert.ok(openapi.paths[path]?.get, `the OpenAPI document has no GET ${path}`);
  return (openapi.paths[path].get.parameters ?? []).filter((p) => p.in === 'query');
}

/**
 * The values a parameter schema allows (`enum`, `const`, or a `pattern` of
 * literal alternatives such as `^series$` or `^(a|b)$`; through a `$ref` or
 * a nullable `oneOf`), or null.
 */
function allowedValues(schema) {
  if (schema.$ref) return allowedValues(schemas[schema.$ref.split('/').pop()]);
  if (schema.enum) return schema.enum.filter((v) => v !== null);
  if (schema.const !== undefined) return [schema.const];
  const literals = schema.pattern?.match(/^\^\(?([\w|:.-]+)\)?\$$/);
  if (literals) return literals[1].split('|');
  for (const variant of schema.oneOf ?? schema.anyOf ?? []) {
    const values = variant.type === 'null' ? null : allowedValues(variant);
    if (values) return values;
  }
  return null;
}

test('history takes the query parameters the client sends', () => {
  const names = queryParameters('/playback/history').map((p) => p.name).sort();
  for (const name of ['account_id', 'cursor', 'limit', 'profile_id']) assert.ok(names.includes(name), `GET /playback/history has no ${name}`);
});

test('continue-watching takes group, and only the value the .d.ts spells', () => {
  const group = queryParameters('/playback/continue-watching').find((p) => p.name === 'group');
  assert.ok(group, 'GET /playback/continue-watching has no group parameter');
  const values = allowedValues(group.schema);
  assert.ok(values, 'group declares its values (enum, const or a pattern of literals)');
  const match = dts.match(/export interface ContinueWatchingOptions \{([^}]*)\}/);
  assert.ok(match, 'the .d.ts declares no interface ContinueWatchingOptions');
  const spelled = [...match[1].match(/^\s*group\?: ([^;]+);/m)[1].matchAll(/'([^']*)'/g)].map((m) => m[1]).sort();
  assert.deepEqual(spelled, [...values].sort());
});
