# language: sv
@criterion:clin-printing @system:new @needs:web_base @needs:fhir_base @writes @per_site
Egenskap: Armband och provetiketter skrivs ut på platsens skrivare
  Vid inskrivning och provtagning skrivs patientarmband och provetiketter ut på
  avdelningens Zebra-skrivare (ZPL över TCP). Etiketter som fungerade på en avdelning men
  inte på nästa var ett sent hinder i verkliga driftstarter. Journalen säger om skrivaren
  tog emot jobbet; skrivaren ska också själv bekräfta att den fick det. Skrivarna är
  platsens enligt planen (sites[].printers, slagen wristband och label).

  @id:klin-printing-01
  Scenario: Armband och provetikett skrivs ut och skrivarna bekräftar jobben
    Givet att en användare på platsen är inloggad i webbklienten
    När användaren söker fram platsens testpatient
    Och beställer labbprovet "P-Na"
    Och skriver ut ett armband på varje armbandsskrivare på platsen
    Och skriver ut en provetikett för "P-Na" på varje etikettskrivare på platsen
    Så säger journalen att varje skrivare tog emot sitt jobb
    Och bekräftar varje skrivare själv att den tog emot jobbet
