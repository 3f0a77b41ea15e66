from fanout.server import main

main()
