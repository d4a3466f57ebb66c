# Operator and developer recipes. `just --list` shows them.
# The operator recipes (today, pay-fines, rehearse, backup) arrive with the
# operator CLI (issue 9); only what works today is listed here.

# Install and start the test services, then fmt, clippy and every test.
test:
    scripts/test.sh
