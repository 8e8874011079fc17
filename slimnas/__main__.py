from slimnas.cli import main

main()
