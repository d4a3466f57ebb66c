# Operator and developer recipes. `just --list` shows them.
#
# The operator recipes run the operator CLI (bins/alma-bursar-sync) from
# this checkout, with the configuration in $ABS_CONFIG, else
# ./alma-bursar-sync.toml (config/example.toml is an annotated example).
# In production, install the binary (`cargo install --path
# bins/alma-bursar-sync --locked`) and call it from cron or a systemd timer
# instead: see docs/operations.md.

config := env_var_or_default("ABS_CONFIG", "alma-bursar-sync.toml")
abs := "cargo run --release --locked --quiet -p alma-bursar-sync --"

# Both directions and a backup (production: Mon/Wed/Fri).
today:
    {{abs}} --config {{config}} today

# Direction 2 (the Bursar's payments into Alma) and a backup (production: Tue/Thu).
pay-fines:
    {{abs}} --config {{config}} pay-fines

# `today` against the built-in simulated Alma, in a new temporary folder or in DIR.
rehearse dir="":
    {{abs}} rehearse {{ if dir == "" { "" } else { "--dir " + dir } }}

# Back up the store (local folder, and S3 when configured).
backup:
    {{abs}} --config {{config}} backup-db

# Install and start the test services, then fmt, clippy and every test.
test:
    scripts/test.sh
