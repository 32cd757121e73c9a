from aegis.cli.main import main

main()
