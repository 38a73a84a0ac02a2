from sertune.cli import main

main()
