# Sourced (BASH_ENV) by bash before a repository's shell script: remember the
# last command that failed, and name it if the script exits with an error.
set -E
trap '__binder_line=$LINENO; __binder_command=$BASH_COMMAND' ERR
trap '__binder_status=$?; if [ "$__binder_status" -ne 0 ]; then
    echo "BINDER-ERROR: $BINDER_SCRIPT failed with exit code $__binder_status${__binder_line:+ at line $__binder_line: $__binder_command}"
fi' EXIT
