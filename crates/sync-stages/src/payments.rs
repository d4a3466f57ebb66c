//! Direction 2: Bursar payments into Alma (SPEC 7). Being written.
