from parity._entry import main

main()
