package store

// PGSupersede lets the external tests read the plan of the PostgreSQL
// superseding.
const PGSupersede = pgSupersede
