-- microfab schema, PostgreSQL flavour (keep in step with ../sqlite/0001_init.sql)
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    product TEXT NOT NULL,
    maker TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    priority TEXT NOT NULL,
    due_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    source_name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    prescreen_json TEXT NOT NULL,
    submission_key TEXT UNIQUE,
    submitted_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    good BIGINT NOT NULL DEFAULT 0,
    scrapped BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE programs (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE steps (
    order_id TEXT NOT NULL REFERENCES orders(id),
    step_index BIGINT NOT NULL,
    step_id TEXT NOT NULL,
    capability TEXT NOT NULL,
    program_kind TEXT NOT NULL,
    program_name TEXT,
    program_sha256 TEXT REFERENCES programs(sha256),
    bbox_json TEXT,
    units_per_run BIGINT NOT NULL,
    run_seconds DOUBLE PRECISION NOT NULL,
    setup_seconds DOUBLE PRECISION NOT NULL,
    setup_family TEXT NOT NULL,
    predecessors_json TEXT NOT NULL,
    materials_json TEXT NOT NULL,
    is_final BIGINT NOT NULL,
    good BIGINT NOT NULL DEFAULT 0,
    scrapped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, step_index)
);
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    capabilities_json TEXT NOT NULL,
    envelope_json TEXT NOT NULL,
    driver_kind TEXT NOT NULL,
    speed_factor DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    maintenance BIGINT NOT NULL DEFAULT 0,
    current_job BIGINT,
    setup_family TEXT,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders(id),
    step_index BIGINT NOT NULL,
    units BIGINT NOT NULL,
    state TEXT NOT NULL,
    material_reserved BIGINT NOT NULL,
    machine_id TEXT REFERENCES machines(id),
    good BIGINT NOT NULL DEFAULT 0,
    scrapped BIGINT NOT NULL DEFAULT 0,
    reason TEXT,
    created_ms BIGINT NOT NULL,
    dispatched_ms BIGINT,
    started_ms BIGINT,
    finished_ms BIGINT
);
CREATE INDEX jobs_by_order ON jobs(order_id, step_index);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE TABLE units (
    id BIGSERIAL PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders(id),
    step_index BIGINT NOT NULL,
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    machine_id TEXT,
    result TEXT NOT NULL,
    reason TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX units_by_order ON units(order_id, step_index);
CREATE TABLE materials (
    id TEXT PRIMARY KEY,
    material TEXT NOT NULL,
    unit TEXT NOT NULL,
    owner TEXT NOT NULL,
    origin TEXT NOT NULL,
    on_hand BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved BIGINT NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    reorder_level BIGINT NOT NULL
);
CREATE TABLE lots (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES materials(id),
    origin TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    note TEXT
);
CREATE TABLE reservations (
    order_id TEXT NOT NULL REFERENCES orders(id),
    account TEXT NOT NULL REFERENCES materials(id),
    reserved BIGINT NOT NULL,
    consumed BIGINT NOT NULL,
    PRIMARY KEY (order_id, account)
);
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    job_id BIGINT,
    machine_id TEXT,
    data TEXT NOT NULL
);
