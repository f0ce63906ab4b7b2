-- What each version's Wasm is: a wasi:http component ('http') or a WAGI
-- command module ('wagi'). Versions recorded before are components.

ALTER TABLE versions ADD COLUMN kind TEXT NOT NULL DEFAULT 'http';
