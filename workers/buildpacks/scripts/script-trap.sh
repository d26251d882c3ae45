# Sourced (BASH_ENV) by bash before a repository's shell script: remember the
# last command that failed, and name it if the script exits with an error.
# Under the script's own `-x` these lines stay out of its trace.
{ __binder_flags=$-; set +x; } 2>/dev/null
# The trap is the script's own: bash scripts it runs (whose failures it may
# handle) do not source this file, nor name themselves as the script.
unset BASH_ENV
export -n BINDER_SCRIPT
set -E
trap '{ __binder_line=$LINENO; __binder_command=$BASH_COMMAND; } 2>/dev/null' ERR
trap '{ __binder_status=$?; } 2>/dev/null; if [ "$__binder_status" -ne 0 ]; then
    echo "BINDER-ERROR: $BINDER_SCRIPT failed with exit code $__binder_status${__binder_line:+ at line $__binder_line: $__binder_command}"
fi 2>/dev/null' EXIT
case $__binder_flags in *x*) set -x ;; esac
