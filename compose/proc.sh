# proc.sh — process helpers shared by services.sh and stack.sh (sourced).

# a zombie counts as dead (a killed daemon's parent may be slow to reap it)
zombie() { [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; }
alive() { kill -0 "$1" 2>/dev/null && ! zombie "$1"; }

# pid_of FILE COMM: print the pid in FILE if it names a live process called COMM
pid_of() {
  local pid
  pid=$(head -n1 "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(ps -o comm= -p "$pid" 2>/dev/null) == "$2" ]] && alive "$pid" && echo "$pid"
}
