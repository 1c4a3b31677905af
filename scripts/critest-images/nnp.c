/* The nonewprivs stand-in (e2e-test-images/nonewprivs): installed setuid root, it prints its
 * effective uid, so "Effective uid: 0" shows that exec gained privileges and the container's
 * own uid shows that no_new_privs prevented it. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Effective uid: %d\n", (int)geteuid());
  return 0;
}
